"""The GCP composition: the capability components wired together for one stack.

`build_gcp` reads as the order things are created in: the project (its APIs, the providers
and what the project says about itself), the network, the cluster, storage, database,
cache, registry, workload identities, then the Kubernetes platform. Each step takes what it
needs and returns what later steps use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_command as command
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


@dataclass(frozen=True)
class _Project:
    """What every GCP step shares: the config, names, providers and the project's facts."""

    cfg: GcpStackConfig
    project: str
    region: str
    prefix: str
    project_number: str
    zone: str
    storage_agent: str
    """The Cloud Storage service agent's email (CMEK grants)."""
    opts: pulumi.ResourceOptions
    """The `gcp` and random providers, for every cloud component."""
    random_provider: random.Provider
    command_provider: command.Provider
    """Runs the CMEK keys' IAM propagation waits (components/gcp/kms.py)."""

    @property
    def protect(self) -> bool:
        return self.cfg.deletion_protection


def _project(cfg: GcpStackConfig) -> _Project:
    """Two providers of one project: `gcp-apis` enables the APIs (and answers the lookups,
    whose APIs docs/first-deploy.md asks to enable beforehand); `gcp`, which every other
    resource uses, waits for them. A component's `depends_on` does not reach its children:
    the provider's does, since every resource waits for its provider."""
    project, region, prefix = cfg.gcp_project, cfg.region, cfg.name_prefix
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
    command_provider = command.Provider("command")
    return _Project(
        cfg=cfg,
        project=project,
        region=region,
        prefix=prefix,
        project_number=str(project_number),
        zone=zone,
        storage_agent=storage_agent.email_address,
        opts=pulumi.ResourceOptions(providers=[provider, random_provider]),
        random_provider=random_provider,
        command_provider=command_provider,
    )


def _network(p: _Project) -> Network:
    net = p.cfg.network
    return Network(
        f"{p.prefix}-network",
        NetworkArgs(
            project=p.project,
            region=p.region,
            nodes_cidr=str(net.cidr),
            pods_cidr=str(net.pods_cidr),
            services_cidr=str(net.services_cidr),
            private_services_cidr=str(net.private_services_cidr),
            control_plane_cidr=str(net.control_plane_cidr),
        ),
        p.opts,
    )


def _cluster(p: _Project, network: Network) -> Cluster:
    cfg = p.cfg
    return Cluster(
        f"{p.prefix}-cluster",
        ClusterArgs(
            project=p.project,
            project_number=p.project_number,
            region=p.region,
            regional=cfg.cluster.regional,
            zone=p.zone,
            cluster_name=f"{p.prefix}-gke",
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
            protect=p.protect,
        ),
        p.opts,
    )


def _store(p: _Project) -> ObjectStore:
    storage = p.cfg.storage
    return ObjectStore(
        f"{p.prefix}-storage",
        ObjectStoreArgs(
            project=p.project,
            region=p.region,
            name_prefix=p.prefix,
            raw_infrequent_access_after_days=storage.raw_infrequent_access_after_days,
            raw_archive_after_days=storage.raw_archive_after_days,
            noncurrent_version_expiration_days=storage.noncurrent_version_expiration_days,
            access_logging=storage.access_logging,
            cmek=storage.cmek,
            storage_service_account=p.storage_agent,
            force_destroy=storage.force_destroy,
            protect=p.protect,
        ),
        p.opts,
    )


def _after_private_access(p: _Project, network: Network) -> pulumi.ResourceOptions:
    """Cloud SQL and Memorystore wait for the private service access connection."""
    return pulumi.ResourceOptions.merge(
        p.opts, pulumi.ResourceOptions(depends_on=[network.private_services_connection])
    )


def _database(p: _Project, network: Network) -> Database:
    db = p.cfg.database
    return Database(
        f"{p.prefix}-database",
        DatabaseArgs(
            project=p.project,
            region=p.region,
            instance_name=f"{p.prefix}-postgres",
            engine_version=db.engine_version,
            tier=db.instance_class,
            storage_gib=db.storage_gib,
            max_storage_gib=db.max_storage_gib,
            regional=db.high_availability,
            backup_retention_days=db.backup_retention_days,
            transaction_log_retention_days=db.transaction_log_retention_days,
            edition=cloud_sql_edition(db.instance_class),
            point_in_time_recovery=db.point_in_time_recovery,
            query_insights=db.performance_insights,
            deletion_protection=p.protect,
            private_network=network.network_id,
            labels=p.cfg.base_tags(),
            cmek=p.cfg.database.cmek,
            command_provider=p.command_provider,
            project_number=p.project_number,
        ),
        _after_private_access(p, network),
    )


def _cache(p: _Project, network: Network) -> Cache:
    return Cache(
        f"{p.prefix}-cache",
        CacheArgs(
            project=p.project,
            region=p.region,
            instance_name=f"{p.prefix}-redis",
            memory_size_gib=p.cfg.cache.memory_size_gib,
            high_availability=p.cfg.cache.high_availability,
            authorized_network=network.network_id,
            protect=p.protect,
            cmek=p.cfg.cache.cmek,
            command_provider=p.command_provider,
            project_number=p.project_number,
        ),
        _after_private_access(p, network),
    )


def _registry(p: _Project) -> Registry:
    return Registry(
        f"{p.prefix}-registry",
        RegistryArgs(
            project=p.project,
            region=p.region,
            repository_id=p.prefix,
            apps=APP_IMAGES,
            keep_images=p.cfg.registry.keep_images,
            protect=p.protect,
            pushed_tags=pushed_tags(p.cfg),
            cmek=p.cfg.registry.cmek,
            command_provider=p.command_provider,
            project_number=p.project_number,
        ),
        p.opts,
    )


def _identity(p: _Project, cluster: Cluster, store: ObjectStore) -> WorkloadIdentity:
    return WorkloadIdentity(
        f"{p.prefix}-identity",
        WorkloadIdentityArgs(
            project=p.project,
            name_prefix=p.prefix,
            workload_pool=cluster.workload_pool,
            workloads=WORKLOAD_SPECS,
            bucket_names=store.bucket_names,
        ),
        p.opts,
    )


def build_gcp(cfg: GcpStackConfig) -> dict[str, Any]:
    """The whole GCP stack; returns its outputs."""
    project = _project(cfg)
    network = _network(project)
    cluster = _cluster(project, network)
    store = _store(project)
    database = _database(project, network)
    cache = _cache(project, network)
    registry = _registry(project)
    identity = _identity(project, cluster, store)
    outputs = build_platform(
        cfg,
        cluster=cluster.contract,
        store=store.contract,
        database=database.contract,
        cache=cache.contract,
        registry=registry.contract,
        identity=identity.contract,
        random_provider=project.random_provider,
    )
    return {
        "cloud": "gcp",
        "environment": cfg.environment,
        "region": cfg.region,
        "project": project.project,
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
