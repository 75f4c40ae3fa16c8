"""What the mock engine answers: realistic, deterministic outputs per resource type.

Ids, ARNs, self-links, endpoints and auto-generated names are derived from a hash of the
stack, type and logical name, so every run of a stack gives the same values. What no engine
could know before the resource exists (a generated password, an image digest) is returned as
Pulumi's unknown sentinel and stays unknown in the plan.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks

from components.contracts import APP_IMAGES
from components.k8s.images import source_tag
from contracts.deployment import UNKNOWN
from stacks.regions import aws_partition

ACCOUNT_ID = "123456789012"
MOCK_CA = base64.b64encode(
    b"-----BEGIN CERTIFICATE-----\nMOCK\n-----END CERTIFICATE-----\n"
).decode()
"""A stand-in cluster CA bundle (base64 PEM), clearly not a real certificate."""
"""The AWS account id the mocks pretend to deploy into."""
MOCK_CA_PEM = "-----BEGIN CERTIFICATE-----\nMOCK-CA\n-----END CERTIFICATE-----\n"
"""A stand-in CA certificate (PEM), clearly not a real certificate."""

# Resource types whose `name` the provider generates from the logical name when not given.
_AUTONAMED = {
    "aws:iam/role:Role",
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/launchTemplate:LaunchTemplate",
    "aws:rds/parameterGroup:ParameterGroup",
    "aws:rds/subnetGroup:SubnetGroup",
    "aws:elasticache/subnetGroup:SubnetGroup",
    "aws:elasticache/parameterGroup:ParameterGroup",
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:ecr/repository:Repository",
    "aws:iam/instanceProfile:InstanceProfile",
    "aws:cloudwatch/eventRule:EventRule",
}

_AWS_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "sgr",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "sgr",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce",
    "aws:ec2/flowLog:FlowLog": "fl",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt",
}


def _uuid(h: str) -> str:
    """A UUID-shaped id from a hex digest (provider ids, KMS key ids)."""
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


@dataclass
class _AwsResource:
    """One AWS resource being answered: its inputs, the outputs so far, and the id and ARN the
    `_aws_*` helpers below refine for their resource family."""

    typ: str
    name: str
    h: str
    inputs: dict[str, Any]
    out: dict[str, Any]
    region: str
    part: str
    acct: str
    phys: Any
    rid: str
    arn: str


def _aws_storage(r: _AwsResource) -> bool:
    """S3 buckets and their sub-resources, KMS keys and aliases."""
    region, part, acct, h = r.region, r.part, r.acct, r.h
    if r.typ == "aws:s3/bucket:Bucket":
        bucket = r.inputs.get("bucket") or f"{r.inputs.get('bucketPrefix', r.name + '-')}{h[:12]}"
        r.rid, r.arn = bucket, f"arn:{part}:s3:::{bucket}"
        r.out.update(
            bucket=bucket,
            bucketDomainName=f"{bucket}.s3.amazonaws.com",
            bucketRegionalDomainName=f"{bucket}.s3.{region}.amazonaws.com",
            region=region,
        )
    elif r.typ.startswith("aws:s3/"):
        r.rid = str(r.inputs.get("bucket", r.rid))
    elif r.typ == "aws:kms/key:Key":
        r.rid = _uuid(h)
        r.arn = f"arn:{part}:kms:{region}:{acct}:key/{r.rid}"
        r.out["keyId"] = r.rid
    elif r.typ == "aws:kms/alias:Alias":
        r.rid = str(r.inputs.get("name", f"alias/{r.name}"))
        r.arn = f"arn:{part}:kms:{region}:{acct}:{r.rid}"
    else:
        return False
    return True


def _aws_identity(r: _AwsResource) -> bool:
    """IAM roles, policies, OIDC providers, instance profiles and role policy attachments."""
    part, acct, h, phys = r.part, r.acct, r.h, r.phys
    if r.typ == "aws:iam/role:Role":
        r.rid = str(phys)
        r.arn = f"arn:{part}:iam::{acct}:role/{phys}"
        r.out["uniqueId"] = "AROA" + h[:17].upper()
    elif r.typ == "aws:iam/policy:Policy":
        r.arn = f"arn:{part}:iam::{acct}:policy/{phys}"
        r.rid = r.arn
    elif r.typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        url = str(r.inputs.get("url", "")).removeprefix("https://")
        r.arn = f"arn:{part}:iam::{acct}:oidc-provider/{url}"
        r.rid = r.arn
    elif r.typ == "aws:iam/instanceProfile:InstanceProfile":
        r.rid = str(phys)
        r.arn = f"arn:{part}:iam::{acct}:instance-profile/{phys}"
        r.out["uniqueId"] = "AIPA" + h[:17].upper()
    elif r.typ == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
        r.rid = f"{r.inputs.get('role')}-{h[:20]}"
    else:
        return False
    return True


def _aws_events(r: _AwsResource) -> bool:
    """SQS queues, EventBridge rules and CloudWatch log groups."""
    region, part, acct, phys = r.region, r.part, r.acct, r.phys
    if r.typ == "aws:sqs/queue:Queue":
        r.rid = f"https://sqs.{region}.amazonaws.com/{acct}/{phys}"
        r.arn = f"arn:{part}:sqs:{region}:{acct}:{phys}"
        r.out.update(name=phys, url=r.rid)
    elif r.typ == "aws:cloudwatch/eventRule:EventRule":
        r.rid = str(phys)
        r.arn = f"arn:{part}:events:{region}:{acct}:rule/{phys}"
    elif r.typ == "aws:cloudwatch/logGroup:LogGroup":
        r.rid = str(phys)
        r.arn = f"arn:{part}:logs:{region}:{acct}:log-group:{phys}"
    else:
        return False
    return True


def _aws_containers(r: _AwsResource) -> bool:
    """EKS clusters, node groups, add-ons, pod identity associations and access entries; ECR
    repositories."""
    region, part, acct, h, inputs = r.region, r.part, r.acct, r.h, r.inputs
    if r.typ == "aws:eks/podIdentityAssociation:PodIdentityAssociation":
        r.rid = f"a-{h[:17]}"
        r.arn = (
            f"arn:{part}:eks:{region}:{acct}:podidentityassociation/"
            f"{inputs.get('clusterName')}/{r.rid}"
        )
        r.out.update(associationId=r.rid, associationArn=r.arn)
    elif r.typ == "aws:eks/accessEntry:AccessEntry":
        r.rid = f"{inputs.get('clusterName')}:{inputs.get('principalArn')}"
        r.arn = f"arn:{part}:eks:{region}:{acct}:access-entry/{inputs.get('clusterName')}/{h[:8]}"
        r.out["accessEntryArn"] = r.arn
    elif r.typ == "aws:eks/cluster:Cluster":
        r.rid = str(r.phys)
        r.arn = f"arn:{part}:eks:{region}:{acct}:cluster/{r.phys}"
        oidc_id = h[:32].upper()
        r.out.update(
            endpoint=f"https://{oidc_id}.gr7.{region}.eks.amazonaws.com",
            certificateAuthority={"data": MOCK_CA},
            identities=[
                {"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{oidc_id}"}]}
            ],
            platformVersion="eks.10",
            status="ACTIVE",
            clusterSecurityGroupId=f"sg-{h[17:34]}",
        )
        vpc = dict(inputs.get("vpcConfig") or {})
        vpc["clusterSecurityGroupId"] = f"sg-{h[17:34]}"
        vpc["vpcId"] = f"vpc-{h[34:51]}"
        r.out["vpcConfig"] = vpc
    elif r.typ == "aws:eks/nodeGroup:NodeGroup":
        r.rid = f"{inputs.get('clusterName')}:{inputs.get('nodeGroupName', r.name)}"
        r.arn = f"arn:{part}:eks:{region}:{acct}:nodegroup/{r.rid.replace(':', '/')}/{h[:8]}"
    elif r.typ == "aws:eks/addon:Addon":
        r.rid = f"{inputs.get('clusterName')}:{inputs.get('addonName')}"
        r.out["addonVersion"] = inputs.get("addonVersion", UNKNOWN)
    elif r.typ == "aws:ecr/repository:Repository":
        repo = inputs.get("name") or r.out.get("name")
        r.rid = str(repo)
        r.arn = f"arn:{part}:ecr:{region}:{acct}:repository/{repo}"
        r.out.update(repositoryUrl=f"{acct}.dkr.ecr.{region}.amazonaws.com/{repo}", registryId=acct)
    else:
        return False
    return True


def _aws_databases(r: _AwsResource) -> bool:
    """RDS instances and ElastiCache replication groups."""
    region, part, acct, h = r.region, r.part, r.acct, r.h
    if r.typ == "aws:rds/instance:Instance":
        ident = r.inputs.get("identifier") or f"{r.name}-{h[:7]}"
        host = f"{ident}.c{h[:10]}.{region}.rds.amazonaws.com"
        port = int(r.inputs.get("port", 5432))
        r.rid, r.arn = str(ident), f"arn:{part}:rds:{region}:{acct}:db:{ident}"
        r.out.update(
            identifier=ident,
            address=host,
            endpoint=f"{host}:{port}",
            port=port,
            resourceId=f"db-{h[:26].upper()}",
        )
    elif r.typ == "aws:elasticache/replicationGroup:ReplicationGroup":
        rgid = r.inputs.get("replicationGroupId") or r.name
        r.rid, r.arn = str(rgid), f"arn:{part}:elasticache:{region}:{acct}:replicationgroup:{rgid}"
        r.out.update(
            primaryEndpointAddress=f"master.{rgid}.{h[:6]}.{region[:6]}.cache.amazonaws.com",
            readerEndpointAddress=f"replica.{rgid}.{h[:6]}.{region[:6]}.cache.amazonaws.com",
            port=int(r.inputs.get("port", 6379)),
        )
    else:
        return False
    return True


def _aws_network(r: _AwsResource) -> bool:
    """VPCs, elastic IPs, security groups and launch templates."""
    h = r.h
    if r.typ == "aws:ec2/launchTemplate:LaunchTemplate":
        r.out["latestVersion"] = 1
    elif r.typ == "aws:ec2/vpc:Vpc":
        r.out.update(
            defaultSecurityGroupId=f"sg-{h[17:34]}",
            mainRouteTableId=f"rtb-{h[17:34]}",
            defaultNetworkAclId=f"acl-{h[17:34]}",
        )
    elif r.typ == "aws:ec2/eip:Eip":
        r.out["publicIp"] = f"203.0.113.{int(h[:2], 16) % 250 + 1}"
    elif r.typ == "aws:ec2/securityGroup:SecurityGroup":
        r.arn = f"arn:{r.part}:ec2:{r.region}:{r.acct}:security-group/{r.rid}"
    else:
        return False
    return True


_AWS_FAMILIES = (
    _aws_storage,
    _aws_identity,
    _aws_events,
    _aws_containers,
    _aws_databases,
    _aws_network,
)
"""Each answers the resource types of its family (True) and leaves the others alone (False)."""


class DexMocks(Mocks):
    """Mocks for one stack. Region and project come from the provider resources' inputs."""

    def __init__(self, stack: str) -> None:
        self.stack = stack
        self.aws_region = "us-east-1"
        self.gcp_project = "dex-project"
        self.gcp_region = "us-central1"

    # -- invokes ------------------------------------------------------------------------------
    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        token = args.token
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            region = self.aws_region
            names = [f"{region}{s}" for s in "abc"]
            return {
                "names": names,
                "zoneIds": [f"{region[:3]}{region.split('-')[-1]}-az{i}" for i in (1, 2, 3)],
                "state": "available",
                "id": region,
            }
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:{aws_partition(self.aws_region)}:iam::{ACCOUNT_ID}:role/deployer",
                "userId": "AROAEXAMPLEDEPLOYER",
                "id": ACCOUNT_ID,
            }
        if token == "aws:index/getPartition:getPartition":
            part = aws_partition(self.aws_region)
            return {"partition": part, "dnsSuffix": "amazonaws.com", "id": part}
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.aws_region, "region": self.aws_region, "id": self.aws_region}
        if token == "gcp:organizations/getProject:getProject":
            return {"projectId": self.gcp_project, "number": "123456789012", "id": self.gcp_project}
        if token == "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
            email = "service-123456789012@gs-project-accounts.iam.gserviceaccount.com"
            return {"emailAddress": email, "member": f"serviceAccount:{email}", "id": email}
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            server = f"{ACCOUNT_ID}.dkr.ecr.{self.aws_region}.amazonaws.com"
            return {
                "proxyEndpoint": f"https://{server}",
                "userName": "AWS",
                "password": "mock-ecr-token",  # a stand-in, made secret
                "authorizationToken": "bW9jaw==",
                "expiresAt": "2030-01-01T00:00:00Z",
                "id": server,
            }
        if token == "gcp:organizations/getClientConfig:getClientConfig":
            return {
                "accessToken": "mock-access-token",  # a stand-in, made secret
                "project": self.gcp_project,
                "region": self.gcp_region,
                "zone": "",
                "id": self.gcp_project,
            }
        if token == "aws:ecr/getImages:getImages":
            # the registry holds the current sources' images (what `dex images push` made)
            repo = str(args.args.get("repositoryName"))
            tag = source_tag(repo.rsplit("/", 1)[-1])
            ids = [{"imageDigest": "sha256:" + _digest("ecr", repo, tag), "imageTag": tag}]
            return {**args.args, "imageIds": ids, "id": repo}
        if token == "gcp:artifactregistry/getDockerImages:getDockerImages":
            repo = str(args.args.get("repositoryId"))
            base = f"{self.gcp_region}-docker.pkg.dev/{self.gcp_project}/{repo}"
            images = [
                {
                    "imageName": app,
                    "tags": [source_tag(app)],
                    "selfLink": f"{base}/{app}@sha256:{_digest('gar', repo, app)}",
                    "name": f"projects/{self.gcp_project}/dockerImages/{app}",
                    "buildTime": "",
                    "imageSizeBytes": "0",
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "updateTime": "",
                    "uploadTime": "",
                }
                for app in APP_IMAGES
            ]
            return {**args.args, "dockerImages": images, "id": repo}
        if token == "command:local:run":
            # the RDS CA bundle `curl` fetches where `pulumi up` runs: a stand-in PEM
            return {**args.args, "stdout": MOCK_CA_PEM, "stderr": ""}
        if token == "gcp:compute/getZones:getZones":
            return {"names": [f"{self.gcp_region}-{s}" for s in "bcd"], "id": self.gcp_region}
        return {}

    # -- resources ----------------------------------------------------------------------------
    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        typ, name = args.typ, args.name
        h = _digest(self.stack, typ, name)
        if typ == "pulumi:providers:aws":
            self.aws_region = inputs.get("region", self.aws_region)
            return _uuid(h), inputs
        if typ == "pulumi:providers:gcp":
            self.gcp_project = inputs.get("project", self.gcp_project)
            self.gcp_region = inputs.get("region", self.gcp_region)
            return _uuid(h), inputs
        if typ.startswith("pulumi:providers:"):
            return _uuid(h), inputs
        if not args.custom:
            return "", {}
        outputs: dict[str, Any] = {}
        if typ in _AUTONAMED and "name" not in inputs and "namePrefix" not in inputs:
            outputs["name"] = f"{name}-{h[:7]}"
        if typ.startswith("aws:"):
            resource_id = self._aws(typ, name, h, inputs, outputs)
        elif typ.startswith("gcp:"):
            resource_id = self._gcp(typ, name, h, inputs, outputs)
        elif typ.startswith("random:"):
            resource_id = self._random(typ, name, h, inputs, outputs)
        elif typ.startswith("kubernetes:"):
            resource_id = self._kubernetes(typ, name, h, inputs, outputs)
        elif typ == "tls:index/privateKey:PrivateKey":
            # a generated key cannot be known before it is generated
            for key in ("privateKeyPem", "privateKeyPemPkcs8", "publicKeyPem", "publicKeyOpenssh"):
                outputs[key] = UNKNOWN
            outputs["publicKeyFingerprintSha256"] = UNKNOWN
            resource_id = h[:40]
        elif typ == "tls:index/selfSignedCert:SelfSignedCert":
            outputs.update(certPem=UNKNOWN, validityStartTime=UNKNOWN, validityEndTime=UNKNOWN)
            resource_id = str(int(h[:16], 16))
        elif typ == "docker-build:index:Image":
            # the digest exists only once the image is built and pushed
            outputs.update(digest=UNKNOWN, ref=UNKNOWN, contextHash=UNKNOWN)
            resource_id = f"sha256:{h}"
        elif typ == "pulumi-python:dynamic:Resource":
            # sealed values are made by the provider at deploy time
            outputs["encrypted"] = UNKNOWN
            resource_id = str(inputs.get("namespace", "")) + "/" + str(inputs.get("name", name))
        else:
            resource_id = f"{name}-{h[:8]}"
        return resource_id, {**inputs, **outputs}

    def _aws(self, typ: str, name: str, h: str, inputs: dict[str, Any], out: dict[str, Any]) -> str:
        region, part, acct = self.aws_region, aws_partition(self.aws_region), ACCOUNT_ID
        service = typ.split(":")[1].split("/", maxsplit=1)[0]
        short = typ.rsplit(":", 1)[-1]
        rid = f"{_AWS_ID_PREFIX.get(typ, short.lower())}-{h[:17]}"
        phys = inputs.get("name") or out.get("name") or f"{name}-{h[:7]}"
        arn = f"arn:{part}:{service}:{region}:{acct}:{short.lower()}/{rid}"
        r = _AwsResource(typ, name, h, inputs, out, region, part, acct, phys, rid, arn)
        for family in _AWS_FAMILIES:
            if family(r):
                break
        out.setdefault("arn", r.arn)
        out["id"] = r.rid
        return r.rid

    def _gcp(self, typ: str, name: str, h: str, inputs: dict[str, Any], out: dict[str, Any]) -> str:
        project = str(inputs.get("project", self.gcp_project))
        region = self.gcp_region
        phys = inputs.get("name") or out.get("name") or f"{name}-{h[:7]}"
        short = typ.rsplit(":", 1)[-1]
        service = typ.split(":")[1].split("/", maxsplit=1)[0]
        location = inputs.get("location") or inputs.get("region") or region
        rid = f"projects/{project}/locations/{location}/{short[0].lower()}{short[1:]}s/{phys}"
        if service == "compute":
            scope = "global" if "region" not in inputs else f"regions/{inputs['region']}"
            rid = f"projects/{project}/{scope}/{short[0].lower()}{short[1:]}s/{phys}"
            out["selfLink"] = f"https://www.googleapis.com/compute/v1/{rid}"
        elif typ == "gcp:storage/bucket:Bucket":
            rid = str(phys)
            out.update(
                url=f"gs://{phys}", selfLink=f"https://www.googleapis.com/storage/v1/b/{phys}"
            )
        elif typ == "gcp:container/cluster:Cluster":
            out.update(
                endpoint=f"10.{int(h[:2], 16)}.0.2",
                masterAuth={"clusterCaCertificate": MOCK_CA},
                selfLink=f"https://container.googleapis.com/v1/{rid}",
            )
        elif typ == "gcp:sql/databaseInstance:DatabaseInstance":
            rid = str(phys)
            out.update(
                connectionName=f"{project}:{region}:{phys}",
                privateIpAddress=f"10.70.0.{int(h[:2], 16) % 250 + 2}",
                # the instance's CA is generated with it
                serverCaCerts=UNKNOWN,
                selfLink=f"https://sqladmin.googleapis.com/sql/v1beta4/projects/{project}/instances/{phys}",
            )
        elif typ == "gcp:redis/instance:Instance":
            out.update(
                host=f"10.70.1.{int(h[:2], 16) % 250 + 2}",
                port=6378,
                authString=UNKNOWN,
                serverCaCerts=UNKNOWN,
            )
        elif typ == "gcp:serviceaccount/account:Account":
            email = f"{inputs.get('accountId')}@{project}.iam.gserviceaccount.com"
            rid = f"projects/{project}/serviceAccounts/{email}"
            out.update(email=email, member=f"serviceAccount:{email}", uniqueId=str(int(h[:15], 16)))
        elif typ == "gcp:kms/cryptoKey:CryptoKey":
            rid = f"{inputs.get('keyRing')}/cryptoKeys/{phys}"
        elif typ == "gcp:artifactregistry/repository:Repository":
            repo = inputs.get("repositoryId", phys)
            out["registryUri"] = f"{location}-docker.pkg.dev/{project}/{repo}"
        out["id"] = rid
        return rid

    def _random(
        self, typ: str, name: str, h: str, inputs: dict[str, Any], out: dict[str, Any]
    ) -> str:
        # A generated secret cannot be known before it is generated.
        if typ in (
            "random:index/randomPassword:RandomPassword",
            "random:index/randomString:RandomString",
        ):
            out.update(result=UNKNOWN)
            if typ.endswith("RandomPassword"):
                out["bcryptHash"] = UNKNOWN
        elif typ == "random:index/randomId:RandomId":
            out.update(hex=UNKNOWN, b64Url=UNKNOWN, b64Std=UNKNOWN, dec=UNKNOWN)
        return "none"

    def _kubernetes(
        self, typ: str, name: str, h: str, inputs: dict[str, Any], out: dict[str, Any]
    ) -> str:
        meta = inputs.get("metadata") or {}
        ns = meta.get("namespace")
        obj_name = meta.get("name") or name
        if typ.startswith("kubernetes:helm.sh/"):
            ns = inputs.get("namespace", "default")
            obj_name = inputs.get("name") or name
            out["status"] = {"status": "deployed", "namespace": ns, "name": obj_name}
        return f"{ns}/{obj_name}" if ns else str(obj_name)
