"""AWS cluster: EKS with encrypted secrets, control-plane logs, a managed system node group,
Karpenter for everything that scales, EKS Pod Identity, and the add-ons a workload needs.

The API endpoint is private unless `public_access_cidrs` lists who may reach it. Access is
by EKS access entries only (authentication mode API, no creator bootstrap): the admin roles
get `AmazonEKSClusterAdminPolicy`, the view roles `AmazonEKSAdminViewPolicy`.

Add-ons (Amazon EKS User Guide, "AWS add-ons" and "Community add-ons"):
- before any node: `vpc-cni` with network policy enforcement on (`enableNetworkPolicy`,
  "Restrict Pod network traffic with Kubernetes network policies"), `kube-proxy`, and
  `eks-pod-identity-agent` (it uses the node role's `eks-auth:AssumeRoleForPodIdentity`,
  granted by AmazonEKSWorkerNodePolicy), so the first node boots with all three;
- once the system nodes exist: `coredns`, `aws-ebs-csi-driver` (its controller assumes its
  role through Pod Identity: AmazonEBSCSIDriverPolicy plus grants on the volume key) and the
  community `metrics-server` (kube-system; the HPA reads it).

EKS 1.30+ ships no default StorageClass: `contract.default_storage_class` describes the gp3
one components/k8s creates, encrypted with this cluster's volume key (`kmsKeyId`, a
parameter of the EBS CSI driver's CreateVolume).

Nodes run from launch templates that require IMDSv2 (hop limit 1, so pods cannot borrow the
node's role) and encrypt their root volumes. The managed group is the fixed base that runs
Karpenter itself and the platform services; Karpenter (components/aws/karpenter.py) adds
system capacity and the batch/spot pool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws import iam, karpenter
from components.aws.kms import customer_key_and_alias
from components.contracts import ClusterOutputs, NodePoolArgs, StorageClassSpec, contract_outputs

AMI_TYPE = "AL2023_x86_64_STANDARD"
"""Pinned AMI family for every node group (never the provider's default)."""

CONTROL_PLANE_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

BEFORE_NODES = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
"""Add-ons installed before the first node joins (DaemonSets the node needs at boot)."""
AFTER_NODES = ("coredns", "aws-ebs-csi-driver", "metrics-server")
"""Add-ons whose Deployments need a node to run on."""
ADDONS = (*BEFORE_NODES, *AFTER_NODES)

VPC_CNI_CONFIGURATION = {"enableNetworkPolicy": "true"}
"""Without it the VPC CNI accepts NetworkPolicies and enforces none."""

EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
"""The EBS CSI controller's service account in kube-system (the add-on creates it)."""

ADMIN_ACCESS_POLICY = "AmazonEKSClusterAdminPolicy"
VIEW_ACCESS_POLICY = "AmazonEKSAdminViewPolicy"
"""Read (get/list/watch) of every object, custom resources and Secrets included: a refresh
reads the Secrets the stack manages. AmazonEKSViewPolicy reads neither custom resources nor
cluster-scoped objects such as StorageClasses, so drift detection cannot use it."""

_MANAGED = "arn:{partition}:iam::aws:policy/{name}"
_ACCESS_POLICY = "arn:{partition}:eks::aws:cluster-access-policy/{name}"


@dataclass(frozen=True)
class ClusterArgs:
    cluster_name: str
    """The EKS cluster's name."""
    kubernetes_version: str
    """Pinned Kubernetes minor version."""
    region: str
    partition: str
    """ARN partition (`aws` in commercial regions)."""
    account_id: str
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
    """Protect the cluster and its keys from deletion (prod)."""
    admin_role_arns: list[str]
    """IAM principals with cluster admin (access entries): the deploy role, which the
    Kubernetes provider authenticates as, must be one of them."""
    view_role_arns: list[str]
    """IAM principals with read of every object (drift detection)."""


class Cluster(pulumi.ComponentResource):
    """EKS cluster, node group, add-ons, access entries, Karpenter's AWS side.
    Type token `dex:aws:Cluster`."""

    name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    """The security group EKS attaches to the control plane and managed nodes."""
    kubeconfig: pulumi.Output[str]
    """A secret kubeconfig that authenticates with `aws eks get-token`."""
    karpenter: karpenter.KarpenterSpec
    """What the Kubernetes side needs to install Karpenter and its NodePools."""
    contract: ClusterOutputs

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:aws:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"component": "cluster"}
        partition = args.partition

        secrets_key = customer_key_and_alias(
            f"{name}-secrets",
            f"EKS secrets envelope encryption for {args.cluster_name}",
            self,
            args.protect,
            tags,
        )[0]
        volumes_key, volumes_alias = customer_key_and_alias(
            f"{name}-volumes",
            f"EBS volumes of {args.cluster_name}'s persistent volume claims",
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
                # Access is what the access entries below say, nothing implicit: an explicit
                # entry for a creator that EKS also bootstrapped would fail as a duplicate.
                # (Changing this later replaces the cluster: it is create-only.)
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[log_group, *attachments], protect=args.protect
            ),
        )
        access = [
            *self._access(name, "admin", args.admin_role_arns, ADMIN_ACCESS_POLICY, cluster, args),
            *self._access(name, "view", args.view_role_arns, VIEW_ACCESS_POLICY, cluster, args),
        ]

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
                # includes eks-auth:AssumeRoleForPodIdentity, which the Pod Identity agent uses
                "AmazonEKSWorkerNodePolicy",
                "AmazonEC2ContainerRegistryReadOnly",
                "AmazonEKS_CNI_Policy",
                "AmazonSSMManagedInstanceCore",
            )
        ]
        addons: dict[str, aws.eks.Addon] = {}
        for addon in BEFORE_NODES:
            addons[addon] = self._addon(
                name,
                addon,
                cluster,
                tags,
                [],
                configuration=VPC_CNI_CONFIGURATION if addon == "vpc-cni" else None,
            )
        system = self._node_group(
            name,
            "system",
            args.system_nodes,
            cluster,
            node_role,
            [*node_attachments, *(addons[a] for a in BEFORE_NODES)],
            args,
            tags,
        )

        ebs_role = aws.iam.Role(
            f"{name}-ebs-csi-role",
            description=f"EBS CSI controller of {args.cluster_name} via Pod Identity",
            assume_role_policy=iam.pod_identity_trust(),
            tags=tags,
            opts=child,
        )
        ebs_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-ebs-csi-policy",
                role=ebs_role.name,
                policy_arn=f"arn:{partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
                opts=child,
            ),
            aws.iam.RolePolicy(
                f"{name}-ebs-csi-volume-key",
                role=ebs_role.id,
                policy=volumes_key.arn.apply(iam.ebs_volume_key_access),
                opts=child,
            ),
        ]
        # the EBS CSI controller gets its credentials from the Pod Identity agent
        ebs_needs: list[pulumi.Resource] = [system, *ebs_policies, addons["eks-pod-identity-agent"]]
        for addon in AFTER_NODES:
            addons[addon] = self._addon(
                name,
                addon,
                cluster,
                tags,
                ebs_needs if addon == "aws-ebs-csi-driver" else [system],
                identities=(
                    [
                        aws.eks.AddonPodIdentityAssociationArgs(
                            role_arn=ebs_role.arn, service_account=EBS_CSI_SERVICE_ACCOUNT
                        )
                    ]
                    if addon == "aws-ebs-csi-driver"
                    else None
                ),
            )

        self.karpenter = karpenter.provision(
            name,
            self,
            cluster=cluster,
            cluster_name=args.cluster_name,
            partition=partition,
            region=args.region,
            account_id=args.account_id,
            system=args.system_nodes,
            batch=args.batch_nodes,
            depends_on=[addons["eks-pod-identity-agent"]],
            tags=tags,
        )

        self.name = cluster.name
        self.endpoint = cluster.endpoint
        self.cluster_security_group_id = cluster.vpc_config.cluster_security_group_id
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                cluster.name, cluster.endpoint, cluster.certificate_authority.data
            ).apply(lambda a: kubeconfig(a[0], a[1], a[2], args.region))
        )
        volume_key_alias_arn = (
            f"arn:{partition}:kms:{args.region}:{args.account_id}:alias/{name}-volumes"
        )
        self.contract = ClusterOutputs(
            name=self.name,
            endpoint=self.endpoint,
            kubeconfig=self.kubeconfig,
            kubernetes_version=args.kubernetes_version,
            default_storage_class=StorageClassSpec(
                name="gp3",
                provisioner="ebs.csi.aws.com",
                # kmsKeyId takes any identifier EC2 CreateVolume accepts, the alias ARN too:
                # a plain string, known before the key exists.
                parameters={"type": "gp3", "encrypted": "true", "kmsKeyId": volume_key_alias_arn},
            ),
            ready=(
                system,
                *addons.values(),
                *access,
                volumes_alias,
                *self.karpenter.ready,
            ),
        )
        self.register_outputs(
            {
                **contract_outputs(self.contract),
                "cluster_security_group_id": self.cluster_security_group_id,
                "karpenter_interruption_queue": self.karpenter.interruption_queue,
                "karpenter_instance_profile": self.karpenter.instance_profile,
            }
        )

    def _access(
        self,
        name: str,
        kind: str,
        principals: list[str],
        policy: str,
        cluster: aws.eks.Cluster,
        args: ClusterArgs,
    ) -> list[pulumi.Resource]:
        """An access entry per principal, with `policy` associated cluster-wide."""
        out: list[pulumi.Resource] = []
        for arn in principals:
            short = arn.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
            entry = aws.eks.AccessEntry(
                f"{name}-{kind}-{short}",
                cluster_name=cluster.name,
                principal_arn=arn,
                type="STANDARD",
                tags={"component": "cluster", "access": kind},
                opts=pulumi.ResourceOptions(parent=self),
            )
            association = aws.eks.AccessPolicyAssociation(
                f"{name}-{kind}-{short}-policy",
                cluster_name=cluster.name,
                principal_arn=entry.principal_arn,
                policy_arn=_ACCESS_POLICY.format(partition=args.partition, name=policy),
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=pulumi.ResourceOptions(parent=self),
            )
            out += [entry, association]
        return out

    def _addon(
        self,
        name: str,
        addon: str,
        cluster: aws.eks.Cluster,
        tags: dict[str, str],
        depends_on: list[pulumi.Resource],
        configuration: dict[str, str] | None = None,
        identities: list[aws.eks.AddonPodIdentityAssociationArgs] | None = None,
    ) -> aws.eks.Addon:
        return aws.eks.Addon(
            f"{name}-addon-{addon}",
            cluster_name=cluster.name,
            addon_name=addon,
            configuration_values=json.dumps(configuration) if configuration else None,
            pod_identity_associations=identities,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )

    def _node_group(
        self,
        name: str,
        pool: str,
        spec: NodePoolArgs,
        cluster: aws.eks.Cluster,
        node_role: aws.iam.Role,
        depends_on: list[pulumi.Resource],
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
            tags=tags,
            # No autoscaler resizes this group (Karpenter adds nodes of its own): the program
            # owns its size, so `desired_size` is what runs.
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
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
