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
node's role) and encrypt their root volumes (components/aws/node_group.py). The managed
group is the fixed base that runs Karpenter itself and the platform services; Karpenter
(components/aws/karpenter.py) adds system capacity and the batch/spot pool.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws import iam, karpenter
from components.aws.kms import KeyArgs, customer_key_and_alias, log_key
from components.aws.node_group import NodeGroupArgs, node_group
from components.contracts import ClusterOutputs, NodePoolArgs, StorageClassSpec, contract_outputs

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
    vpc_cidr: str = ""
    """The VPC's range: the control plane's network interfaces get their addresses from the
    cluster's subnets in it, so the API server calls webhooks from there."""


@dataclass(frozen=True, kw_only=True)
class AccessArgs:
    """EKS access entries for a group of principals, all with one access policy."""

    kind: str
    """`admin` or `view`: part of each entry's resource name and its `access` tag."""
    principals: Sequence[str]
    """IAM role (or user) ARNs."""
    policy: str
    """The EKS access policy associated cluster-wide (`AmazonEKSClusterAdminPolicy`)."""
    cluster_name: pulumi.Input[str]
    partition: str


@dataclass(frozen=True, kw_only=True)
class AddonArgs:
    """One EKS add-on, at the version EKS picks for the cluster."""

    addon: str
    """The add-on's EKS name (`vpc-cni`)."""
    cluster_name: pulumi.Input[str]
    depends_on: Sequence[pulumi.Resource]
    tags: dict[str, str]
    configuration: dict[str, str] | None = None
    """The add-on's configuration values (JSON-encoded for EKS)."""
    identities: list[aws.eks.AddonPodIdentityAssociationArgs] | None = None
    """Pod Identity associations the add-on manages for its service accounts."""


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
        tags = {"component": "cluster"}

        secrets_key, volumes_key, volumes_alias = self._keys(name, args, tags)
        cluster = self._control_plane(name, args, secrets_key, tags)
        access = self._access_entries(name, args, cluster)

        node_role, node_attachments = self._node_role(name, args.partition, tags)
        addons = self._addons_before_nodes(name, cluster, tags)
        system = node_group(
            name,
            NodeGroupArgs(
                pool="system",
                spec=args.system_nodes,
                cluster_name=cluster.name,
                node_role_arn=node_role.arn,
                subnet_ids=args.subnet_ids,
                depends_on=[*node_attachments, *(addons[a] for a in BEFORE_NODES)],
                tags=tags,
            ),
            self,
        )
        addons |= self._addons_after_nodes(
            name,
            args,
            cluster,
            system=system,
            volumes_key=volumes_key,
            pod_identity_agent=addons["eks-pod-identity-agent"],
            tags=tags,
        )

        self.karpenter = karpenter.provision(
            name,
            karpenter.KarpenterArgs(
                cluster=cluster,
                cluster_name=args.cluster_name,
                partition=args.partition,
                region=args.region,
                account_id=args.account_id,
                system=args.system_nodes,
                batch=args.batch_nodes,
                depends_on=[addons["eks-pod-identity-agent"]],
                tags=tags,
            ),
            self,
        )
        self._publish(
            name,
            args,
            cluster,
            ready=(system, *addons.values(), *access, volumes_alias, *self.karpenter.ready),
        )

    def _keys(
        self, name: str, args: ClusterArgs, tags: dict[str, str]
    ) -> tuple[aws.kms.Key, aws.kms.Key, aws.kms.Alias]:
        """The secrets envelope key, and the volumes key with its alias (the StorageClass
        names the alias)."""
        secrets_key = customer_key_and_alias(
            f"{name}-secrets",
            KeyArgs(
                description=f"EKS secrets envelope encryption for {args.cluster_name}",
                protect=args.protect,
                tags=tags,
                account_id=args.account_id,
                partition=args.partition,
            ),
            self,
        )[0]
        volumes_key, volumes_alias = customer_key_and_alias(
            f"{name}-volumes",
            KeyArgs(
                description=f"EBS volumes of {args.cluster_name}'s persistent volume claims",
                protect=args.protect,
                tags=tags,
                account_id=args.account_id,
                partition=args.partition,
            ),
            self,
        )
        return secrets_key, volumes_key, volumes_alias

    def _control_plane(
        self, name: str, args: ClusterArgs, secrets_key: aws.kms.Key, tags: dict[str, str]
    ) -> aws.eks.Cluster:
        """The log group, the cluster role and the EKS cluster itself."""
        child = pulumi.ResourceOptions(parent=self)
        # EKS writes to exactly this name; creating it first sets the retention and the key.
        log_group_name = f"/aws/eks/{args.cluster_name}/cluster"
        logs_key = log_key(
            f"{name}-control-plane-logs-key",
            log_groups=[log_group_name],
            region=args.region,
            account_id=args.account_id,
            partition=args.partition,
            protect=args.protect,
            tags=tags,
            parent=self,
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=log_group_name,
            retention_in_days=args.log_retention_days,
            kms_key_id=logs_key.arn,
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
                policy_arn=_MANAGED.format(partition=args.partition, name=policy),
                opts=child,
            )
            for policy in ("AmazonEKSClusterPolicy",)
        ]
        public = bool(args.public_access_cidrs)
        return aws.eks.Cluster(
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

    def _node_role(
        self, name: str, partition: str, tags: dict[str, str]
    ) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
        """The managed node group's role and its managed policies."""
        child = pulumi.ResourceOptions(parent=self)
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
        return node_role, node_attachments

    def _addons_before_nodes(
        self, name: str, cluster: aws.eks.Cluster, tags: dict[str, str]
    ) -> dict[str, aws.eks.Addon]:
        """The DaemonSets a node needs at boot (`BEFORE_NODES`), VPC CNI enforcing policies."""
        return {
            addon: self._addon(
                name,
                AddonArgs(
                    addon=addon,
                    cluster_name=cluster.name,
                    depends_on=[],
                    tags=tags,
                    configuration=VPC_CNI_CONFIGURATION if addon == "vpc-cni" else None,
                ),
            )
            for addon in BEFORE_NODES
        }

    def _addons_after_nodes(
        self,
        name: str,
        args: ClusterArgs,
        cluster: aws.eks.Cluster,
        *,
        system: aws.eks.NodeGroup,
        volumes_key: aws.kms.Key,
        pod_identity_agent: aws.eks.Addon,
        tags: dict[str, str],
    ) -> dict[str, aws.eks.Addon]:
        """The Deployments that need a node (`AFTER_NODES`); the EBS CSI controller also
        needs its role, which it assumes through the Pod Identity agent."""
        ebs_role, ebs_policies = self._ebs_csi_role(name, args, volumes_key, tags)
        # the EBS CSI controller gets its credentials from the Pod Identity agent
        ebs_needs: list[pulumi.Resource] = [system, *ebs_policies, pod_identity_agent]
        addons: dict[str, aws.eks.Addon] = {}
        for addon in AFTER_NODES:
            ebs = addon == "aws-ebs-csi-driver"
            addons[addon] = self._addon(
                name,
                AddonArgs(
                    addon=addon,
                    cluster_name=cluster.name,
                    depends_on=ebs_needs if ebs else [system],
                    tags=tags,
                    identities=(
                        [
                            aws.eks.AddonPodIdentityAssociationArgs(
                                role_arn=ebs_role.arn, service_account=EBS_CSI_SERVICE_ACCOUNT
                            )
                        ]
                        if ebs
                        else None
                    ),
                ),
            )
        return addons

    def _ebs_csi_role(
        self, name: str, args: ClusterArgs, volumes_key: aws.kms.Key, tags: dict[str, str]
    ) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
        """The EBS CSI controller's role: AmazonEBSCSIDriverPolicy and use of the volume key."""
        child = pulumi.ResourceOptions(parent=self)
        ebs_role = aws.iam.Role(
            f"{name}-ebs-csi-role",
            description=f"EBS CSI controller of {args.cluster_name} via Pod Identity",
            assume_role_policy=iam.pod_identity_trust(),
            tags=tags,
            opts=child,
        )
        ebs_policies: list[pulumi.Resource] = [
            aws.iam.RolePolicyAttachment(
                f"{name}-ebs-csi-policy",
                role=ebs_role.name,
                policy_arn=(
                    f"arn:{args.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
                ),
                opts=child,
            ),
            aws.iam.RolePolicy(
                f"{name}-ebs-csi-volume-key",
                role=ebs_role.id,
                policy=volumes_key.arn.apply(iam.ebs_volume_key_access),
                opts=child,
            ),
        ]
        return ebs_role, ebs_policies

    def _publish(
        self,
        name: str,
        args: ClusterArgs,
        cluster: aws.eks.Cluster,
        ready: tuple[pulumi.Resource, ...],
    ) -> None:
        """Set the outputs and the contract; `ready` is what a workload waits for."""
        self.name = cluster.name
        self.endpoint = cluster.endpoint
        self.cluster_security_group_id = cluster.vpc_config.cluster_security_group_id
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                cluster.name, cluster.endpoint, cluster.certificate_authority.data
            ).apply(lambda a: kubeconfig(a[0], a[1], a[2], args.region))
        )
        volume_key_alias_arn = (
            f"arn:{args.partition}:kms:{args.region}:{args.account_id}:alias/{name}-volumes"
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
            api_server_cidrs=(args.vpc_cidr,) if args.vpc_cidr else (),
            ready=ready,
        )
        self.register_outputs(
            {
                **contract_outputs(self.contract),
                "cluster_security_group_id": self.cluster_security_group_id,
                "karpenter_interruption_queue": self.karpenter.interruption_queue,
                "karpenter_instance_profile": self.karpenter.instance_profile,
            }
        )

    def _access_entries(
        self, name: str, args: ClusterArgs, cluster: aws.eks.Cluster
    ) -> list[pulumi.Resource]:
        """Cluster admin for `admin_role_arns`, read of everything for `view_role_arns`."""
        groups = (
            ("admin", args.admin_role_arns, ADMIN_ACCESS_POLICY),
            ("view", args.view_role_arns, VIEW_ACCESS_POLICY),
        )
        return [
            resource
            for kind, principals, policy in groups
            for resource in self._access(
                name,
                AccessArgs(
                    kind=kind,
                    principals=principals,
                    policy=policy,
                    cluster_name=cluster.name,
                    partition=args.partition,
                ),
            )
        ]

    def _access(self, name: str, args: AccessArgs) -> list[pulumi.Resource]:
        """An access entry per principal, with `policy` associated cluster-wide."""
        out: list[pulumi.Resource] = []
        for arn in args.principals:
            short = arn.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
            entry = aws.eks.AccessEntry(
                f"{name}-{args.kind}-{short}",
                cluster_name=args.cluster_name,
                principal_arn=arn,
                type="STANDARD",
                tags={"component": "cluster", "access": args.kind},
                opts=pulumi.ResourceOptions(parent=self),
            )
            association = aws.eks.AccessPolicyAssociation(
                f"{name}-{args.kind}-{short}-policy",
                cluster_name=args.cluster_name,
                principal_arn=entry.principal_arn,
                policy_arn=_ACCESS_POLICY.format(partition=args.partition, name=args.policy),
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=pulumi.ResourceOptions(parent=self),
            )
            out += [entry, association]
        return out

    def _addon(self, name: str, args: AddonArgs) -> aws.eks.Addon:
        return aws.eks.Addon(
            f"{name}-addon-{args.addon}",
            cluster_name=args.cluster_name,
            addon_name=args.addon,
            configuration_values=json.dumps(args.configuration) if args.configuration else None,
            pod_identity_associations=args.identities,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
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
