"""AWS rules: VPC and security groups, EC2 instances and launch templates, IAM; and the helpers
the AWS rule modules share.

The other AWS rules live by service family: S3, RDS, ElastiCache, KMS and CloudWatch log
retention in `policies/rules_aws_data.py`; EKS and ECR in `policies/rules_aws_cluster.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from policies.model import (
    ALWAYS,
    PROD,
    WORLD,
    StackSubject,
    Subject,
    as_list,
    policy_statements,
    resource_rule,
    stack_rule,
)

SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY = "aws:iam/policy:Policy"
USER_POLICY = "aws:iam/userPolicy:UserPolicy"
GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"

ADMIN_PORTS = (22, 3389)
DATA_PORTS = (5432, 3306, 1433, 6379, 11211, 27017, 9200, 5439)
PUBLIC_WEB_PORTS = (80, 443)


def _names(resources: Iterable[Subject], attr: str = "bucket") -> set[str]:
    names = set()
    for r in resources:
        value = r.props.get(attr)
        if isinstance(value, str):
            names.add(value)
    return names


# -- network and security groups -------------------------------------------------------------------


def _covers(rule: dict[str, Any], port: int) -> bool:
    protocol = str(rule.get("protocol", rule.get("ipProtocol", "tcp")))
    if protocol in ("-1", "all"):
        return True
    low, high = rule.get("fromPort"), rule.get("toPort")
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return False
    return low <= port <= high


def _world_ingress(r: Subject) -> Iterator[tuple[dict[str, Any], str]]:
    """(rule, cidr) for every ingress rule of a security group resource open to the world."""
    if r.type == SG:
        for rule in as_list(r.get("ingress")):
            for cidr in [*as_list(rule.get("cidrBlocks")), *as_list(rule.get("ipv6CidrBlocks"))]:
                if cidr in WORLD:
                    yield rule, cidr
    elif r.type == SG_RULE and r.get("type") == "ingress":
        props = dict(r.props)
        for cidr in [*as_list(props.get("cidrBlocks")), *as_list(props.get("ipv6CidrBlocks"))]:
            if cidr in WORLD:
                yield props, cidr
    elif r.type == SG_INGRESS:
        props = dict(r.props)
        for key in ("cidrIpv4", "cidrIpv6"):
            if props.get(key) in WORLD:
                yield props, str(props[key])


@resource_rule(
    "AWS-EC2-001",
    "No security group opens SSH or RDP to the internet",
    "critical",
    ALWAYS,
    [SG, SG_RULE, SG_INGRESS],
    "Remove the 0.0.0.0/0 rule; use SSM Session Manager.",
    ["CIS-AWS-1.4.0:5.2", "CIS-AWS-1.4.0:5.3"],
)
def ec2_admin_ports(r: Subject) -> Iterator[str]:
    for rule, cidr in _world_ingress(r):
        for port in ADMIN_PORTS:
            if _covers(rule, port):
                yield f"port {port} open to {cidr}"


@resource_rule(
    "AWS-EC2-002",
    "No security group opens database or cache ports to the internet",
    "critical",
    ALWAYS,
    [SG, SG_RULE, SG_INGRESS],
    "Allow the port only from the clients' security group.",
)
def ec2_data_ports(r: Subject) -> Iterator[str]:
    for rule, cidr in _world_ingress(r):
        for port in DATA_PORTS:
            if _covers(rule, port):
                yield f"port {port} open to {cidr}"


@resource_rule(
    "AWS-EC2-003",
    "Security groups open only web ports to the internet",
    "high",
    ALWAYS,
    [SG, SG_RULE, SG_INGRESS],
    "Only a public load balancer may accept 0.0.0.0/0, and only on 80/443.",
)
def ec2_world_only_web(r: Subject) -> Iterator[str]:
    for rule, cidr in _world_ingress(r):
        low, high = rule.get("fromPort"), rule.get("toPort")
        web = low == high and low in PUBLIC_WEB_PORTS
        if not web:
            protocol = rule.get("protocol", rule.get("ipProtocol"))
            yield f"ports {low}-{high} ({protocol}) open to {cidr}"


@stack_rule(
    "AWS-VPC-001",
    "Every VPC has flow logs",
    "medium",
    PROD,
    ["aws:ec2/vpc:Vpc", "aws:ec2/flowLog:FlowLog"],
    "Add an aws.ec2.FlowLog with traffic_type ALL for the VPC.",
    ["CIS-AWS-1.4.0:3.9"],
)
def vpc_flow_logs(stack: StackSubject) -> Iterator[tuple[str, str]]:
    logged = _names(stack.of_type("aws:ec2/flowLog:FlowLog"), "vpcId")
    for vpc in stack.of_type("aws:ec2/vpc:Vpc"):
        if vpc.props.get("id") not in logged:
            yield vpc.urn, "VPC has no flow log"


@stack_rule(
    "AWS-VPC-002",
    "Every VPC's default security group allows nothing",
    "medium",
    PROD,
    ["aws:ec2/vpc:Vpc", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"],
    "Manage the default SG with aws.ec2.DefaultSecurityGroup and no rules.",
    ["CIS-AWS-1.4.0:5.4"],
)
def vpc_default_sg(stack: StackSubject) -> Iterator[tuple[str, str]]:
    locked = _names(
        (
            d
            for d in stack.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
            if not d.props.get("ingress") and not d.props.get("egress")
        ),
        "vpcId",
    )
    for vpc in stack.of_type("aws:ec2/vpc:Vpc"):
        if vpc.props.get("id") not in locked:
            yield vpc.urn, "the VPC's default security group is not locked down"


@resource_rule(
    "AWS-EC2-004",
    "Subnets do not hand out public IPs",
    "medium",
    PROD,
    ["aws:ec2/subnet:Subnet"],
    "Set map_public_ip_on_launch to false; public reach goes through load balancers.",
)
def subnet_no_public_ip(r: Subject) -> Iterator[str]:
    if r.get("mapPublicIpOnLaunch") is True:
        yield "mapPublicIpOnLaunch is true"


@resource_rule(
    "AWS-EC2-005",
    "Instances and launch templates require IMDSv2",
    "high",
    ALWAYS,
    [LAUNCH_TEMPLATE, INSTANCE],
    "Set metadata_options.http_tokens to required.",
    ["CIS-AWS-3.0.0:5.6"],
)
def imdsv2(r: Subject) -> Iterator[str]:
    tokens = (r.get("metadataOptions") or {}).get("httpTokens")
    if tokens != "required":
        yield f"metadataOptions.httpTokens is {tokens!r}, must be required"


@resource_rule(
    "AWS-EC2-006",
    "Launch template volumes are encrypted",
    "high",
    ALWAYS,
    [LAUNCH_TEMPLATE],
    "Set ebs.encrypted on every block device mapping.",
    ["CIS-AWS-1.4.0:2.2.1"],
)
def ebs_encrypted(r: Subject) -> Iterator[str]:
    for mapping in as_list(r.get("blockDeviceMappings")):
        ebs = mapping.get("ebs") or {}
        if ebs and str(ebs.get("encrypted")).lower() != "true":
            yield f"{mapping.get('deviceName')} is not encrypted"


# -- IAM ----------------------------------------------------------------------------------------

IDENTITY_POLICIES = [POLICY, ROLE_POLICY, USER_POLICY, GROUP_POLICY]


def _identity_statements(r: Subject) -> Iterator[dict[str, Any]]:
    docs = [r.get("policy")]
    if r.type == ROLE:
        docs += [p.get("policy") for p in as_list(r.get("inlinePolicies"))]
    for doc in docs:
        yield from (dict(s) for s in policy_statements(doc))


@resource_rule(
    "AWS-IAM-001",
    "No IAM policy grants every action on every resource",
    "critical",
    ALWAYS,
    [*IDENTITY_POLICIES, ROLE],
    "Grant named actions on named resources.",
    ["CIS-AWS-1.4.0:1.16"],
)
def iam_no_admin(r: Subject) -> Iterator[str]:
    for stmt in _identity_statements(r):
        if stmt.get("Effect") != "Allow":
            continue
        if "*" in as_list(stmt.get("Action")) and "*" in as_list(stmt.get("Resource")):
            yield f"statement {stmt.get('Sid', '?')} allows *:* (full admin)"


RESOURCELESS_ACTIONS = re.compile(
    r"^(ec2:Describe[A-Za-z]+|iam:ListInstanceProfiles|pricing:GetProducts)$"
)
"""Actions IAM authorizes only on Resource "*" (no resource-level permissions: EC2 Describe*,
listing instance profiles, the Price List API). A statement of only these may name "*"."""


def resourceless(actions: Iterable[Any]) -> bool:
    """Every action is one IAM accepts only on Resource "*"."""
    names = [str(a) for a in actions]
    return bool(names) and all(RESOURCELESS_ACTIONS.match(a) for a in names)


@resource_rule(
    "AWS-IAM-002",
    "IAM policies name actions, not whole services",
    "high",
    PROD,
    [*IDENTITY_POLICIES, ROLE],
    "Replace `service:*` and `*` actions with the actions the "
    "workload calls; scope resources to ARNs (only actions without resource-level "
    "permissions, such as ec2:Describe*, may name Resource '*').",
)
def iam_no_wildcards(r: Subject) -> Iterator[str]:
    for stmt in _identity_statements(r):
        if stmt.get("Effect") != "Allow":
            continue
        wild = [a for a in as_list(stmt.get("Action")) if a == "*" or str(a).endswith(":*")]
        if wild:
            yield f"statement {stmt.get('Sid', '?')} allows {', '.join(map(str, wild))}"
        actions = as_list(stmt.get("Action"))
        if "*" in as_list(stmt.get("Resource")) and not wild and not resourceless(actions):
            yield f"statement {stmt.get('Sid', '?')} applies to Resource '*'"


@resource_rule(
    "AWS-IAM-003",
    "No long-lived IAM user credentials",
    "high",
    ALWAYS,
    [
        "aws:iam/accessKey:AccessKey",
        "aws:iam/serviceSpecificCredential:ServiceSpecificCredential",
        "aws:iam/signingCertificate:SigningCertificate",
    ],
    "Use roles (EKS Pod Identity, OIDC federation for CI) instead of users with access keys "
    "or service-specific credentials.",
    ["CIS-AWS-1.4.0:1.14"],
)
def iam_no_keys(r: Subject) -> Iterator[str]:
    kind = r.type.rsplit(":", 1)[-1]
    yield (
        f"an IAM {kind} of user {r.props.get('userName') or r.props.get('user') or '?'} is a "
        "long-lived credential"
    )


@resource_rule(
    "AWS-IAM-004",
    "Role trust policies are not open to everyone",
    "critical",
    ALWAYS,
    [ROLE],
    "Trust named services, accounts or one OIDC subject; web identity trust must pin `:sub`.",
)
def iam_trust(r: Subject) -> Iterator[str]:
    for stmt in policy_statements(r.get("assumeRolePolicy")):
        if stmt.get("Effect") != "Allow":
            continue
        principal = stmt.get("Principal")
        if principal == "*" or (
            isinstance(principal, dict) and "*" in as_list(principal.get("AWS"))
        ):
            yield "any principal may assume the role"
        if "sts:AssumeRoleWithWebIdentity" in as_list(stmt.get("Action")):
            conditions = stmt.get("Condition") or {}
            keys = [k for block in conditions.values() if isinstance(block, dict) for k in block]
            if not any(k.endswith(":sub") for k in keys):
                yield (
                    "web identity trust does not pin the subject (:sub): any service account "
                    "could assume it"
                )


@resource_rule(
    "AWS-IAM-005",
    "No AdministratorAccess on roles",
    "critical",
    ALWAYS,
    [
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:iam/policyAttachment:PolicyAttachment",
    ],
    "Attach least-privilege policies instead.",
    ["CIS-AWS-1.4.0:1.16"],
)
def iam_no_admin_attachment(r: Subject) -> Iterator[str]:
    arn = str(r.get("policyArn", ""))
    if arn.endswith(":policy/AdministratorAccess"):
        yield "AdministratorAccess attached"
