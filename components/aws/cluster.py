"""AWS cluster: EKS with encrypted secrets, control-plane logs, managed node groups and IRSA.

The API endpoint is private unless `public_access_cidrs` lists who may reach it. Nodes run
from launch templates that require IMDSv2 (hop limit 1, so pods cannot borrow the node's
role) and encrypt their root volumes. The EBS CSI driver is installed with its own IRSA role
so persistent volumes work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws import iam
from components.aws.kms import customer_key
from components.contracts import ClusterOutputs, NodePoolArgs, contract_outputs

AMI_TYPE = "AL2023_x86_64_STANDARD"
"""Pinned AMI family for every node group (never the provider's default)."""

CONTROL_PLANE_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

ADDONS = ("vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver")

_MANAGED = "arn:{partition}:iam::aws:policy/{name}"


@dataclass(frozen=True)
class ClusterArgs:
    cluster_name: str
    """The EKS cluster's name."""
    kubernetes_version: str
    """Pinned Kubernetes minor version."""
    region: str
    partition: str
    """ARN partition (`aws` in commercial regions)."""
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    """Private subnets for the control plane's ENIs and the nodes."""
    public_access_cidrs: list[str]
    """Who may reach the API endpoint from outside the VPC; empty = private endpoint only."""
    system_nodes: NodePoolArgs
    batch_nodes: NodePoolArgs
    log_retention_days: int
    """How long control-plane logs are kept."""
    protect: bool
    """Protect the cluster and its secrets key from deletion (prod)."""


class Cluster(pulumi.ComponentResource):
    """EKS cluster, node groups, OIDC provider and add-ons. Type token `dex:aws:Cluster`."""

    name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    """The security group EKS attaches to the control plane and managed nodes."""
    kubeconfig: pulumi.Output[str]
    """A secret kubeconfig that authenticates with `aws eks get-token`."""
    contract: ClusterOutputs

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:aws:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"component": "cluster"}
        partition = args.partition

        secrets_key = customer_key(
            f"{name}-secrets",
            f"EKS secrets envelope encryption for {args.cluster_name}",
            self,
            args.protect,
            tags,
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            # EKS writes to exactly this name; creating it first sets the retention.
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=args.log_retention_days,
            tags=tags,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=iam.service_trust("eks.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-role-{policy}",
                role=role.name,
                policy_arn=_MANAGED.format(partition=partition, name=policy),
                opts=child,
            )
            for policy in ("AmazonEKSClusterPolicy",)
        ]
        public = bool(args.public_access_cidrs)
        cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=public,
                public_access_cidrs=args.public_access_cidrs if public else None,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=secrets_key.arn),
                resources=["secrets"],
            ),
            enabled_cluster_log_types=CONTROL_PLANE_LOGS,
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                bootstrap_cluster_creator_admin_permissions=True,
            ),
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[log_group, *attachments], protect=args.protect
            ),
        )

        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=cluster.identities[0].oidcs[0].issuer,
            client_id_lists=["sts.amazonaws.com"],
            tags=tags,
            opts=child,
        )

        node_role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=iam.service_trust("ec2.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        node_attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy}",
                role=node_role.name,
                policy_arn=_MANAGED.format(partition=partition, name=policy),
                opts=child,
            )
            for policy in (
                "AmazonEKSWorkerNodePolicy",
                "AmazonEC2ContainerRegistryReadOnly",
                "AmazonEKS_CNI_Policy",
                "AmazonSSMManagedInstanceCore",
            )
        ]
        groups = [
            self._node_group(
                name, "system", args.system_nodes, cluster, node_role, node_attachments, args, tags
            ),
            self._node_group(
                name, "batch", args.batch_nodes, cluster, node_role, node_attachments, args, tags
            ),
        ]

        ebs_role = aws.iam.Role(
            f"{name}-ebs-csi-role",
            assume_role_policy=pulumi.Output.all(oidc.arn, oidc.url).apply(
                lambda a: iam.irsa_trust(a[0], a[1], "kube-system", "ebs-csi-controller-sa")
            ),
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi-policy",
            role=ebs_role.name,
            policy_arn=f"arn:{partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
            opts=child,
        )
        for addon in ADDONS:
            needs_nodes = addon in ("coredns", "aws-ebs-csi-driver")
            aws.eks.Addon(
                f"{name}-addon-{addon}",
                cluster_name=cluster.name,
                addon_name=addon,
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                service_account_role_arn=ebs_role.arn if addon == "aws-ebs-csi-driver" else None,
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=groups if needs_nodes else []),
            )

        self.name = cluster.name
        self.endpoint = cluster.endpoint
        self.oidc_provider_arn = oidc.arn
        self.oidc_issuer_url = cluster.identities[0].oidcs[0].issuer
        self.cluster_security_group_id = cluster.vpc_config.cluster_security_group_id
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                cluster.name, cluster.endpoint, cluster.certificate_authority.data
            ).apply(lambda a: kubeconfig(a[0], a[1], a[2], args.region))
        )
        self.contract = ClusterOutputs(
            name=self.name,
            endpoint=self.endpoint,
            kubeconfig=self.kubeconfig,
            kubernetes_version=args.kubernetes_version,
        )
        self.register_outputs(
            {
                **contract_outputs(self.contract),
                "oidc_provider_arn": self.oidc_provider_arn,
                "cluster_security_group_id": self.cluster_security_group_id,
            }
        )

    def _node_group(
        self,
        name: str,
        pool: str,
        spec: NodePoolArgs,
        cluster: aws.eks.Cluster,
        node_role: aws.iam.Role,
        attachments: list[aws.iam.RolePolicyAttachment],
        args: ClusterArgs,
        tags: dict[str, str],
    ) -> aws.eks.NodeGroup:
        template = aws.ec2.LaunchTemplate(
            f"{name}-{pool}-lt",
            description=f"DEX {pool} nodes: IMDSv2 only, encrypted gp3 root volume",
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=spec.disk_size_gib,
                        volume_type="gp3",
                        encrypted="true",
                        delete_on_termination="true",
                    ),
                )
            ],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(
                    resource_type="instance", tags={**tags, "Name": f"{name}-{pool}"}
                )
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        taints = (
            [aws.eks.NodeGroupTaintArgs(key="dex.io/pool", value="batch", effect="NO_SCHEDULE")]
            if pool == "batch"
            else []
        )
        return aws.eks.NodeGroup(
            f"{name}-{pool}-nodes",
            cluster_name=cluster.name,
            node_group_name_prefix=f"{pool}-",
            node_role_arn=node_role.arn,
            subnet_ids=args.subnet_ids,
            ami_type=AMI_TYPE,
            capacity_type="SPOT" if spec.spot else "ON_DEMAND",
            instance_types=spec.instance_types,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=spec.min_size, desired_size=spec.desired_size, max_size=spec.max_size
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            labels={"dex.io/pool": pool},
            taints=taints,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=attachments,
                # The autoscaler owns the live size; do not fight it on every `pulumi up`.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig (JSON) that gets short-lived tokens from `aws eks get-token`."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
                }
            ],
            "contexts": [
                {"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}
            ],
            "current-context": cluster_name,
            "users": [
                {
                    "name": cluster_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks",
                                "get-token",
                                "--cluster-name",
                                cluster_name,
                                "--region",
                                region,
                                "--output",
                                "json",
                            ],
                        }
                    },
                }
            ],
        },
        sort_keys=True,
    )
