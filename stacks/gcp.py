"""The GCP composition: the capability components wired together for one stack."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from components.contracts import APP_IMAGES, WORKLOAD_SPECS, NodePoolArgs
from components.gcp.cache import Cache, CacheArgs
from components.gcp.cluster import Cluster, ClusterArgs
from components.gcp.database import Database, DatabaseArgs
from components.gcp.network import Network, NetworkArgs
from components.gcp.object_store import ObjectStore, ObjectStoreArgs
from components.gcp.registry import Registry, RegistryArgs
from components.gcp.services import ProjectServices
from components.gcp.workload_identity import WorkloadIdentity, WorkloadIdentityArgs
from stacks.config import GcpStackConfig, NodeGroupConfig, cloud_sql_edition
from stacks.platform import build_platform, pushed_tags


def node_pool(spec: NodeGroupConfig) -> NodePoolArgs:
    return NodePoolArgs(**spec.model_dump())


def build_gcp(cfg: GcpStackConfig) -> dict[str, Any]:
    project, region, prefix = cfg.gcp_project, cfg.region, cfg.name_prefix
    protect = cfg.deletion_protection
    # Two providers of one project: `gcp-apis` enables the APIs (and answers the lookups,
    # whose APIs docs/first-deploy.md asks to enable beforehand); `gcp`, which every other
    # resource uses, waits for them. A component's `depends_on` does not reach its children:
    # the provider's does, since every resource waits for its provider.
    api_provider = gcp.Provider("gcp-apis", project=project, region=region)
    invoke = pulumi.InvokeOptions(provider=api_provider)
    project_number = gcp.organizations.get_project(project_id=project, opts=invoke).number
    zone = gcp.compute.get_zones(project=project, region=region, opts=invoke).names[0]
    storage_agent = gcp.storage.get_project_service_account(project=project, opts=invoke)
    apis = ProjectServices(
        f"{prefix}-apis", project, pulumi.ResourceOptions(providers=[api_provider])
    )
    provider = gcp.Provider(
        "gcp",
        project=project,
        region=region,
        default_labels=cfg.base_tags(),
        opts=pulumi.ResourceOptions(depends_on=list(apis.services)),
    )
    random_provider = random.Provider("random")
    opts = pulumi.ResourceOptions(providers=[provider, random_provider])

    network = Network(
        f"{prefix}-network",
        NetworkArgs(
            project=project,
            region=region,
            nodes_cidr=str(cfg.network.cidr),
            pods_cidr=str(cfg.network.pods_cidr),
            services_cidr=str(cfg.network.services_cidr),
            private_services_cidr=str(cfg.network.private_services_cidr),
            control_plane_cidr=str(cfg.network.control_plane_cidr),
        ),
        opts,
    )
    cluster = Cluster(
        f"{prefix}-cluster",
        ClusterArgs(
            project=project,
            project_number=str(project_number),
            region=region,
            regional=cfg.cluster.regional,
            zone=zone,
            cluster_name=f"{prefix}-gke",
            kubernetes_version=cfg.cluster.kubernetes_version,
            release_channel=cfg.cluster.release_channel,
            network=network.network_id,
            subnetwork=network.subnet_self_link,
            control_plane_cidr=str(cfg.network.control_plane_cidr),
            public_access_cidrs=[str(c) for c in cfg.cluster.public_access_cidrs],
            node_cidr=str(cfg.network.cidr),
            system_nodes=node_pool(cfg.cluster.system_nodes),
            batch_nodes=node_pool(cfg.cluster.batch_nodes),
            encrypt_secrets=cfg.cluster.encrypt_secrets,
            protect=protect,
        ),
        opts,
    )
    store = ObjectStore(
        f"{prefix}-storage",
        ObjectStoreArgs(
            project=project,
            region=region,
            name_prefix=prefix,
            raw_infrequent_access_after_days=cfg.storage.raw_infrequent_access_after_days,
            raw_archive_after_days=cfg.storage.raw_archive_after_days,
            noncurrent_version_expiration_days=cfg.storage.noncurrent_version_expiration_days,
            access_logging=cfg.storage.access_logging,
            cmek=cfg.storage.cmek,
            storage_service_account=storage_agent.email_address,
            force_destroy=cfg.storage.force_destroy,
            protect=protect,
        ),
        opts,
    )
    database = Database(
        f"{prefix}-database",
        DatabaseArgs(
            project=project,
            region=region,
            instance_name=f"{prefix}-postgres",
            engine_version=cfg.database.engine_version,
            tier=cfg.database.instance_class,
            storage_gib=cfg.database.storage_gib,
            max_storage_gib=cfg.database.max_storage_gib,
            regional=cfg.database.high_availability,
            backup_retention_days=cfg.database.backup_retention_days,
            transaction_log_retention_days=cfg.database.transaction_log_retention_days,
            edition=cloud_sql_edition(cfg.database.instance_class),
            point_in_time_recovery=cfg.database.point_in_time_recovery,
            query_insights=cfg.database.performance_insights,
            deletion_protection=protect,
            private_network=network.network_id,
            depends_on=[network.private_services_connection],
            labels=cfg.base_tags(),
        ),
        opts,
    )
    cache = Cache(
        f"{prefix}-cache",
        CacheArgs(
            project=project,
            region=region,
            instance_name=f"{prefix}-redis",
            memory_size_gib=cfg.cache.memory_size_gib,
            high_availability=cfg.cache.high_availability,
            authorized_network=network.network_id,
            depends_on=[network.private_services_connection],
            protect=protect,
        ),
        opts,
    )
    registry = Registry(
        f"{prefix}-registry",
        RegistryArgs(
            project=project,
            region=region,
            repository_id=prefix,
            apps=APP_IMAGES,
            keep_images=cfg.registry.keep_images,
            protect=protect,
            pushed_tags=pushed_tags(cfg),
        ),
        opts,
    )
    identity = WorkloadIdentity(
        f"{prefix}-identity",
        WorkloadIdentityArgs(
            project=project,
            name_prefix=prefix,
            workload_pool=cluster.workload_pool,
            workloads=WORKLOAD_SPECS,
            bucket_names=store.bucket_names,
        ),
        opts,
    )
    outputs = build_platform(
        cfg,
        cluster=cluster.contract,
        store=store.contract,
        database=database.contract,
        cache=cache.contract,
        registry=registry.contract,
        identity=identity.contract,
        random_provider=random_provider,
    )
    return {
        "cloud": "gcp",
        "environment": cfg.environment,
        "region": region,
        "project": project,
        "network": network.network_self_link,
        "cluster_name": cluster.name,
        "cluster_endpoint": cluster.endpoint,
        "kubeconfig": pulumi.Output.secret(cluster.kubeconfig),
        "bucket_names": store.bucket_names,
        "registry_urls": registry.contract.repository_urls,
        "database_host": database.contract.host,
        "cache_host": cache.contract.host,
        "workload_identities": identity.contract.identities,
        **outputs,
    }
