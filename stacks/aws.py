"""The AWS composition: the capability components wired together for one stack.

`build_aws` reads as the order things are created in: providers and what the account says
about itself, the network, the cluster, storage, database, cache, registry, workload
identities, the Kubernetes platform, then Karpenter on the cluster. Each step takes what it
needs and returns what later steps use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_command as command
import pulumi_random as random

from components.aws.cache import Cache, CacheArgs
from components.aws.cluster import Cluster, ClusterArgs
from components.aws.database import Database, DatabaseArgs
from components.aws.iam import access_warning, role_arn_of_caller
from components.aws.network import Network, NetworkArgs
from components.aws.object_store import ObjectStore, ObjectStoreArgs
from components.aws.registry import Registry, RegistryArgs
from components.aws.workload_identity import WorkloadIdentity, WorkloadIdentityArgs
from components.contracts import APP_IMAGES, WORKLOAD_SPECS, NodePoolArgs
from components.k8s.karpenter import (
    Karpenter,
    KarpenterArgs,
    controller_replicas,
    controller_resources,
)
from stacks.config import (
    RDS_PARAMETER_FAMILIES,
    VALKEY_PARAMETER_FAMILIES,
    AwsStackConfig,
    NodeGroupConfig,
)
from stacks.platform import build_platform, kubernetes_provider, pushed_tags
from stacks.regions import aws_partition


def node_pool(spec: NodeGroupConfig) -> NodePoolArgs:
    return NodePoolArgs(**spec.model_dump())


@dataclass(frozen=True)
class _Account:
    """What every AWS step shares: the config, names, providers and the account."""

    cfg: AwsStackConfig
    prefix: str
    partition: str
    account_id: str
    opts: pulumi.ResourceOptions
    """The AWS and random providers, for every cloud component."""
    random_provider: random.Provider
    command_provider: command.Provider

    @property
    def protect(self) -> bool:
        return self.cfg.deletion_protection


def _account(cfg: AwsStackConfig) -> tuple[_Account, list[str], list[str]]:
    """Providers (default providers are disabled in Pulumi.<stack>.yaml: every package gets
    one here), the account, the zones to span and the cluster's admin roles."""
    provider = aws.Provider(
        "aws",
        region=cfg.region,
        default_tags=aws.ProviderDefaultTagsArgs(tags=cfg.base_tags()),
    )
    random_provider = random.Provider("random")
    command_provider = command.Provider("command")
    invoke = pulumi.InvokeOptions(provider=provider)
    zones = aws.get_availability_zones(state="available", opts=invoke).names[
        : cfg.network.availability_zones
    ]
    caller = aws.get_caller_identity(opts=invoke)
    # With no admin roles configured, whoever runs `pulumi up` administers the cluster.
    admin_role_arns = list(cfg.cluster.admin_role_arns) or [role_arn_of_caller(caller.arn)]
    if warning := access_warning(caller.arn, admin_role_arns, cfg.cluster.view_role_arns):
        pulumi.log.warn(warning)
    account = _Account(
        cfg=cfg,
        prefix=cfg.name_prefix,
        partition=aws_partition(cfg.region),
        account_id=caller.account_id,
        opts=pulumi.ResourceOptions(providers=[provider, random_provider]),
        random_provider=random_provider,
        command_provider=command_provider,
    )
    return account, list(zones), admin_role_arns


def _network(a: _Account, zones: list[str]) -> Network:
    cfg = a.cfg
    return Network(
        f"{a.prefix}-network",
        NetworkArgs(
            cidr=str(cfg.network.cidr),
            availability_zones=zones,
            nat_gateways=cfg.network.nat_gateways,
            flow_logs_retention_days=cfg.network.flow_logs_retention_days,
            cluster_name=f"{a.prefix}-eks",
            region=cfg.region,
            account_id=a.account_id,
            partition=a.partition,
            protect=a.protect,
        ),
        a.opts,
    )


def _cluster(a: _Account, network: Network, admin_role_arns: list[str]) -> Cluster:
    cfg = a.cfg
    return Cluster(
        f"{a.prefix}-cluster",
        ClusterArgs(
            cluster_name=f"{a.prefix}-eks",
            kubernetes_version=cfg.cluster.kubernetes_version,
            region=cfg.region,
            partition=a.partition,
            account_id=a.account_id,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            public_access_cidrs=[str(c) for c in cfg.cluster.public_access_cidrs],
            system_nodes=node_pool(cfg.cluster.system_nodes),
            batch_nodes=node_pool(cfg.cluster.batch_nodes),
            log_retention_days=cfg.cluster.log_retention_days,
            protect=a.protect,
            admin_role_arns=admin_role_arns,
            view_role_arns=list(cfg.cluster.view_role_arns),
            vpc_cidr=str(cfg.network.cidr),
        ),
        a.opts,
    )


def _store(a: _Account) -> ObjectStore:
    storage = a.cfg.storage
    return ObjectStore(
        f"{a.prefix}-storage",
        ObjectStoreArgs(
            name_prefix=a.prefix,
            account_id=a.account_id,
            partition=a.partition,
            raw_infrequent_access_after_days=storage.raw_infrequent_access_after_days,
            raw_archive_after_days=storage.raw_archive_after_days,
            noncurrent_version_expiration_days=storage.noncurrent_version_expiration_days,
            access_logging=storage.access_logging,
            force_destroy=storage.force_destroy,
            protect=a.protect,
        ),
        a.opts,
    )


def _database(a: _Account, network: Network, cluster: Cluster) -> Database:
    db = a.cfg.database
    return Database(
        f"{a.prefix}-database",
        DatabaseArgs(
            identifier=f"{a.prefix}-postgres",
            engine_version=db.engine_version,
            parameter_group_family=RDS_PARAMETER_FAMILIES[db.engine_version],
            instance_class=db.instance_class,
            storage_gib=db.storage_gib,
            max_storage_gib=db.max_storage_gib,
            multi_az=db.high_availability,
            backup_retention_days=db.backup_retention_days,
            performance_insights=db.performance_insights,
            deletion_protection=a.protect,
            vpc_id=network.vpc_id,
            subnet_ids=network.database_subnet_ids,
            client_security_group_ids=[cluster.cluster_security_group_id],
            region=a.cfg.region,
            command_provider=a.command_provider,
            account_id=a.account_id,
            partition=a.partition,
        ),
        a.opts,
    )


def _cache(a: _Account, network: Network, cluster: Cluster) -> Cache:
    cache = a.cfg.cache
    return Cache(
        f"{a.prefix}-cache",
        CacheArgs(
            replication_group_id=f"{a.prefix}-valkey",
            engine_version=cache.engine_version,
            parameter_group_family=VALKEY_PARAMETER_FAMILIES[cache.engine_version],
            node_type=cache.node_type,
            replicas=cache.replicas,
            high_availability=cache.high_availability,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            client_security_group_ids=[cluster.cluster_security_group_id],
            snapshot_retention_days=cache.snapshot_retention_days,
            protect=a.protect,
            region=a.cfg.region,
            account_id=a.account_id,
            partition=a.partition,
        ),
        a.opts,
    )


def _registry(a: _Account) -> Registry:
    return Registry(
        f"{a.prefix}-registry",
        RegistryArgs(
            name_prefix=a.prefix,
            apps=APP_IMAGES,
            keep_images=a.cfg.registry.keep_images,
            protect=a.protect,
            pushed_tags=pushed_tags(a.cfg),
        ),
        a.opts,
    )


def _identity(a: _Account, cluster: Cluster, store: ObjectStore) -> WorkloadIdentity:
    return WorkloadIdentity(
        f"{a.prefix}-identity",
        WorkloadIdentityArgs(
            name_prefix=a.prefix,
            workloads=WORKLOAD_SPECS,
            cluster_name=cluster.name,
            bucket_arns=store.bucket_arns,
            kms_key_arn=store.kms_key_arn,
        ),
        a.opts,
    )


def _karpenter(a: _Account, cluster: Cluster, k8s_provider: pulumi.ProviderResource) -> None:
    """Karpenter's controller and NodePools on the same cluster (its AWS side: the cluster)."""
    Karpenter(
        f"{a.prefix}-karpenter",
        KarpenterArgs(
            spec=cluster.karpenter,
            replicas=controller_replicas(a.cfg.cluster.system_nodes.desired_size),
            resources=controller_resources(a.cfg.cluster.karpenter_controller_size),
            tags=a.cfg.base_tags(),
        ),
        pulumi.ResourceOptions(providers=[k8s_provider]),
    )


def build_aws(cfg: AwsStackConfig) -> dict[str, Any]:
    """The whole AWS stack; returns its outputs."""
    account, zones, admin_role_arns = _account(cfg)
    network = _network(account, zones)
    cluster = _cluster(account, network, admin_role_arns)
    store = _store(account)
    database = _database(account, network, cluster)
    cache = _cache(account, network, cluster)
    registry = _registry(account)
    identity = _identity(account, cluster, store)
    k8s_provider = kubernetes_provider(cluster.contract)
    outputs = build_platform(
        cfg,
        cluster=cluster.contract,
        store=store.contract,
        database=database.contract,
        cache=cache.contract,
        registry=registry.contract,
        identity=identity.contract,
        random_provider=account.random_provider,
        provider=k8s_provider,
    )
    _karpenter(account, cluster, k8s_provider)
    return {
        "cloud": "aws",
        "environment": cfg.environment,
        "region": cfg.region,
        "vpc_id": network.vpc_id,
        "cluster_name": cluster.name,
        "cluster_endpoint": cluster.endpoint,
        "kubeconfig": pulumi.Output.secret(cluster.kubeconfig),
        "bucket_names": store.bucket_names,
        "registry_urls": registry.contract.repository_urls,
        "database_host": database.host,
        "cache_host": cache.contract.host,
        "workload_roles": identity.contract.identities,
        **outputs,
    }
