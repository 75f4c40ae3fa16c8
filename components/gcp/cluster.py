"""GCP cluster: GKE with private nodes, Workload Identity, shielded nodes with secure boot,
Dataplane V2 (network policy enforced), Binary Authorization (the project's policy), a release
channel, no default node pool, no legacy ABAC, no basic auth or client certificate, and (prod)
application-layer secrets encryption with Cloud KMS. Regional in prod, zonal in dev."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.contracts import ClusterOutputs, NodePoolArgs, contract_outputs
from components.gcp.network import PODS_RANGE, SERVICES_RANGE

NODE_ROLES = (
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
)
"""The minimal roles of the nodes' own service account (never the default compute SA)."""


@dataclass(frozen=True)
class ClusterArgs:
    project: str
    project_number: str
    region: str
    regional: bool
    """Regional control plane and nodes across zones (prod), or one zone (dev)."""
    zone: str
    """The zone of a zonal cluster."""
    cluster_name: str
    kubernetes_version: str
    release_channel: str
    network: pulumi.Input[str]
    subnetwork: pulumi.Input[str]
    control_plane_cidr: str
    public_access_cidrs: list[str]
    """Who may reach the control plane from outside; empty = private endpoint only."""
    node_cidr: str
    """The node range, always allowed to reach the private endpoint."""
    system_nodes: NodePoolArgs
    batch_nodes: NodePoolArgs
    encrypt_secrets: bool
    """Cloud KMS application-layer encryption of Kubernetes secrets (prod)."""
    protect: bool


@dataclass(frozen=True, kw_only=True)
class GkeNodePoolArgs:
    """One GKE node pool, autoscaled, on the nodes' own service account."""

    pool: str
    """`system` or `batch`: the pool's name and its `dex.io/pool` node label."""
    spec: NodePoolArgs
    project: str
    cluster_name: pulumi.Input[str]
    location: str
    """The cluster's region (regional) or zone (zonal)."""
    service_account: pulumi.Input[str]
    """The nodes' service account email."""
    labels: dict[str, str]
    """Resource labels of the pool's VMs."""


class Cluster(pulumi.ComponentResource):
    """GKE cluster and node pools. Type token `dex:gcp:Cluster`."""

    name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    workload_pool: pulumi.Output[str]
    """`PROJECT.svc.id.goog`, read from the cluster: it exists only once the cluster with
    Workload Identity does, so whatever names it waits for the cluster."""
    node_service_account: pulumi.Output[str]
    contract: ClusterOutputs

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:gcp:Cluster", name, None, opts)
        labels = {"component": "cluster"}
        location = args.region if args.regional else args.zone

        nodes_sa, node_roles = self._node_identity(name, args)
        encryption, depends = self._secrets_encryption(name, args, labels)
        cluster = self._gke(name, args, location, encryption, depends, labels)
        pools = [
            self._node_pool(
                name,
                GkeNodePoolArgs(
                    pool=pool,
                    spec=spec,
                    project=args.project,
                    cluster_name=cluster.name,
                    location=location,
                    service_account=nodes_sa.email,
                    labels=labels,
                ),
            )
            for pool, spec in (("system", args.system_nodes), ("batch", args.batch_nodes))
        ]
        self._publish(args, cluster, nodes_sa, ready=(*pools, *node_roles))

    def _node_identity(
        self, name: str, args: ClusterArgs
    ) -> tuple[gcp.serviceaccount.Account, list[pulumi.Resource]]:
        """The nodes' own service account and its `NODE_ROLES`."""
        child = pulumi.ResourceOptions(parent=self)
        nodes_sa = gcp.serviceaccount.Account(
            f"{name}-nodes-sa",
            # no silent truncation: the stack config checks the 6-30 character rule
            account_id=f"{args.cluster_name}-nodes",
            display_name=f"GKE nodes of {args.cluster_name}",
            project=args.project,
            opts=child,
        )
        node_roles: list[pulumi.Resource] = []
        for role in NODE_ROLES:
            member = gcp.projects.IAMMember(
                f"{name}-nodes-{role.split('/')[1].replace('.', '-')}",
                project=args.project,
                role=role,
                member=nodes_sa.member,
                opts=child,
            )
            node_roles.append(member)
        return nodes_sa, node_roles

    def _secrets_encryption(
        self, name: str, args: ClusterArgs, labels: dict[str, str]
    ) -> tuple[gcp.container.ClusterDatabaseEncryptionArgs | None, list[pulumi.Resource]]:
        """With `encrypt_secrets`: a key ring and key GKE's service agent may use, the
        cluster's database encryption with it, and the grant the cluster must wait for.
        Protected with `args.protect` like the bucket keys (components/gcp/object_store.py)."""
        if not args.encrypt_secrets:
            return None, []
        ring = gcp.kms.KeyRing(
            f"{name}-keyring",
            name=f"{args.cluster_name}-keyring",
            location=args.region,
            project=args.project,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        key = gcp.kms.CryptoKey(
            f"{name}-secrets-key",
            name=f"{args.cluster_name}-secrets",
            key_ring=ring.id,
            rotation_period="7776000s",
            purpose="ENCRYPT_DECRYPT",
            labels=labels,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        agent = (
            f"serviceAccount:service-{args.project_number}"
            "@container-engine-robot.iam.gserviceaccount.com"
        )
        grant = gcp.kms.CryptoKeyIAMMember(
            f"{name}-secrets-key-gke",
            crypto_key_id=key.id,
            role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=agent,
            opts=pulumi.ResourceOptions(parent=self),
        )
        encryption = gcp.container.ClusterDatabaseEncryptionArgs(state="ENCRYPTED", key_name=key.id)
        return encryption, [grant]

    def _gke(
        self,
        name: str,
        args: ClusterArgs,
        location: str,
        encryption: gcp.container.ClusterDatabaseEncryptionArgs | None,
        depends: list[pulumi.Resource],
        labels: dict[str, str],
    ) -> gcp.container.Cluster:
        """The cluster itself, without its default node pool."""
        return gcp.container.Cluster(
            f"{name}-gke",
            name=args.cluster_name,
            project=args.project,
            location=location,
            network=args.network,
            subnetwork=args.subnetwork,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name=PODS_RANGE,
                services_secondary_range_name=SERVICES_RANGE,
            ),
            remove_default_node_pool=True,
            initial_node_count=1,
            min_master_version=args.kubernetes_version,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=args.release_channel),
            private_cluster_config=_private_cluster_config(args),
            master_authorized_networks_config=_authorized_networks(args),
            master_auth=gcp.container.ClusterMasterAuthArgs(
                client_certificate_config=gcp.container.ClusterMasterAuthClientCertificateConfigArgs(
                    issue_client_certificate=False
                )
            ),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=_workload_pool(args.project)
            ),
            datapath_provider="ADVANCED_DATAPATH",
            # Envoy Gateway installs the Gateway API CRDs (and owns them): GKE must not manage
            # its own copy, which it reverts and guards with an admission policy
            gateway_api_config=gcp.container.ClusterGatewayApiConfigArgs(
                channel="CHANNEL_DISABLED"
            ),
            enable_shielded_nodes=True,
            # Admission checks every image against the project's Binary Authorization policy.
            # A project without one admits every image ("All image admission requests are
            # permitted if a project has no policy", projects.getPolicy), so a first deploy
            # and the platform's charts run unchanged; tightening the policy (attestors,
            # allow-listed registries) is a policy change, not a cluster change.
            binary_authorization=gcp.container.ClusterBinaryAuthorizationArgs(
                evaluation_mode="PROJECT_SINGLETON_POLICY_ENFORCE"
            ),
            enable_legacy_abac=False,
            enable_intranode_visibility=True,
            database_encryption=encryption,
            logging_config=gcp.container.ClusterLoggingConfigArgs(
                enable_components=["SYSTEM_COMPONENTS", "WORKLOADS", "APISERVER"]
            ),
            monitoring_config=gcp.container.ClusterMonitoringConfigArgs(
                enable_components=["SYSTEM_COMPONENTS"]
            ),
            addons_config=gcp.container.ClusterAddonsConfigArgs(
                gce_persistent_disk_csi_driver_config=gcp.container.ClusterAddonsConfigGcePersistentDiskCsiDriverConfigArgs(
                    enabled=True
                ),
                http_load_balancing=gcp.container.ClusterAddonsConfigHttpLoadBalancingArgs(
                    disabled=False
                ),
            ),
            resource_labels=labels,
            deletion_protection=args.protect,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=depends,
                protect=args.protect,
                # The first node pool is removed right after creation; do not re-create it.
                ignore_changes=["initialNodeCount"],
            ),
        )

    def _node_pool(self, name: str, args: GkeNodePoolArgs) -> gcp.container.NodePool:
        pool, spec = args.pool, args.spec
        taints = (
            [
                gcp.container.NodePoolNodeConfigTaintArgs(
                    key="dex.io/pool", value="batch", effect="NO_SCHEDULE"
                )
            ]
            if pool == "batch"
            else []
        )
        return gcp.container.NodePool(
            f"{name}-{pool}-pool",
            name=pool,
            project=args.project,
            cluster=args.cluster_name,
            location=args.location,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                total_min_node_count=spec.min_size,
                total_max_node_count=spec.max_size,
                location_policy="BALANCED" if not spec.spot else "ANY",
            ),
            initial_node_count=max(spec.desired_size, spec.min_size, 1)
            if pool == "system"
            else spec.desired_size,
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=spec.instance_types[0],
                disk_size_gb=spec.disk_size_gib,
                disk_type="pd-balanced",
                spot=spec.spot,
                service_account=args.service_account,
                oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
                shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True
                ),
                metadata={"disable-legacy-endpoints": "true"},
                labels={"dex.io/pool": pool},
                resource_labels=args.labels,
                taints=taints,
            ),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["initialNodeCount"]),
        )

    def _publish(
        self,
        args: ClusterArgs,
        cluster: gcp.container.Cluster,
        nodes_sa: gcp.serviceaccount.Account,
        ready: tuple[pulumi.Resource, ...],
    ) -> None:
        """Set the outputs and the contract; `ready` is what a workload waits for."""
        workload_pool = _workload_pool(args.project)
        self.name = cluster.name
        self.workload_pool = cluster.workload_identity_config.apply(
            lambda c: (c.workload_pool if c else None) or workload_pool
        )
        self.endpoint = cluster.endpoint.apply(lambda e: f"https://{e}")
        self.node_service_account = nodes_sa.email
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate
            ).apply(lambda a: kubeconfig(str(a[0]), str(a[1]), str(a[2])))
        )
        self.contract = ClusterOutputs(
            name=self.name,
            endpoint=self.endpoint,
            kubeconfig=self.kubeconfig,
            kubernetes_version=args.kubernetes_version,
            # GKE ships a default StorageClass (`standard-rwo`), kube-dns and Dataplane V2 with
            # the control plane; pods still need nodes, and nodes need their roles (image
            # pulls from Artifact Registry, logging) before they can run anything.
            default_storage_class=None,
            api_server_cidrs=(args.control_plane_cidr,),
            ready=ready,
        )
        self.register_outputs(
            {
                **contract_outputs(self.contract),
                "workload_pool": self.workload_pool,
                "node_service_account": nodes_sa.email,
            }
        )


def _workload_pool(project: str) -> str:
    """The Workload Identity pool of a project's clusters."""
    return f"{project}.svc.id.goog"


def _private_cluster_config(args: ClusterArgs) -> gcp.container.ClusterPrivateClusterConfigArgs:
    """Private nodes always; the endpoint is private unless `public_access_cidrs` is set."""
    public = bool(args.public_access_cidrs)
    return gcp.container.ClusterPrivateClusterConfigArgs(
        enable_private_nodes=True,
        enable_private_endpoint=not public,
        master_ipv4_cidr_block=args.control_plane_cidr,
        master_global_access_config=gcp.container.ClusterPrivateClusterConfigMasterGlobalAccessConfigArgs(
            enabled=False
        ),
    )


def _authorized_networks(
    args: ClusterArgs,
) -> gcp.container.ClusterMasterAuthorizedNetworksConfigArgs:
    """Who may reach the control plane: the nodes, then each of `public_access_cidrs`."""
    authorized = [
        gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
            cidr_block=args.node_cidr, display_name="nodes"
        ),
        *[
            gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                cidr_block=cidr, display_name=f"allowed-{i}"
            )
            for i, cidr in enumerate(args.public_access_cidrs)
        ],
    ]
    return gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(cidr_blocks=authorized)


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str) -> str:
    """A kubeconfig (JSON) that authenticates through `gke-gcloud-auth-plugin`."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {
                        "server": f"https://{endpoint}",
                        "certificate-authority-data": ca_data,
                    },
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
                            "command": "gke-gcloud-auth-plugin",
                            "installHint": "gcloud components install gke-gcloud-auth-plugin",
                            "provideClusterInfo": True,
                        }
                    },
                }
            ],
        },
        sort_keys=True,
    )
