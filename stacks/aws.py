"""The AWS composition: the capability components wired together for one stack."""

from __future__ import annotations

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


def build_aws(cfg: AwsStackConfig) -> dict[str, Any]:
    prefix = cfg.name_prefix
    partition = aws_partition(cfg.region)
    provider = aws.Provider(
        "aws",
        region=cfg.region,
        default_tags=aws.ProviderDefaultTagsArgs(tags=cfg.base_tags()),
    )
    # Default providers are disabled (Pulumi.<stack>.yaml): every package gets one here.
    random_provider = random.Provider("random")
    command_provider = command.Provider("command")
    opts = pulumi.ResourceOptions(providers=[provider, random_provider])
    invoke = pulumi.InvokeOptions(provider=provider)
    zones = aws.get_availability_zones(state="available", opts=invoke).names[
        : cfg.network.availability_zones
    ]
    caller = aws.get_caller_identity(opts=invoke)
    account_id = caller.account_id
    # With no admin roles configured, whoever runs `pulumi up` administers the cluster.
    admin_role_arns = list(cfg.cluster.admin_role_arns) or [role_arn_of_caller(caller.arn)]
    if warning := access_warning(caller.arn, admin_role_arns, cfg.cluster.view_role_arns):
        pulumi.log.warn(warning)
    cluster_name = f"{prefix}-eks"
    protect = cfg.deletion_protection

    network = Network(
        f"{prefix}-network",
        NetworkArgs(
            cidr=str(cfg.network.cidr),
            availability_zones=list(zones),
            nat_gateways=cfg.network.nat_gateways,
            flow_logs_retention_days=cfg.network.flow_logs_retention_days,
            cluster_name=cluster_name,
            region=cfg.region,
        ),
        opts,
    )
    cluster = Cluster(
        f"{prefix}-cluster",
        ClusterArgs(
            cluster_name=cluster_name,
            kubernetes_version=cfg.cluster.kubernetes_version,
            region=cfg.region,
            partition=partition,
            account_id=account_id,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            public_access_cidrs=[str(c) for c in cfg.cluster.public_access_cidrs],
            system_nodes=node_pool(cfg.cluster.system_nodes),
            batch_nodes=node_pool(cfg.cluster.batch_nodes),
            log_retention_days=cfg.cluster.log_retention_days,
            protect=protect,
            admin_role_arns=admin_role_arns,
            view_role_arns=list(cfg.cluster.view_role_arns),
        ),
        opts,
    )
    store = ObjectStore(
        f"{prefix}-storage",
        ObjectStoreArgs(
            name_prefix=prefix,
            account_id=account_id,
            partition=partition,
            raw_infrequent_access_after_days=cfg.storage.raw_infrequent_access_after_days,
            raw_archive_after_days=cfg.storage.raw_archive_after_days,
            noncurrent_version_expiration_days=cfg.storage.noncurrent_version_expiration_days,
            access_logging=cfg.storage.access_logging,
            force_destroy=cfg.storage.force_destroy,
            protect=protect,
        ),
        opts,
    )
    database = Database(
        f"{prefix}-database",
        DatabaseArgs(
            identifier=f"{prefix}-postgres",
            engine_version=cfg.database.engine_version,
            parameter_group_family=RDS_PARAMETER_FAMILIES[cfg.database.engine_version],
            instance_class=cfg.database.instance_class,
            storage_gib=cfg.database.storage_gib,
            max_storage_gib=cfg.database.max_storage_gib,
            multi_az=cfg.database.high_availability,
            backup_retention_days=cfg.database.backup_retention_days,
            performance_insights=cfg.database.performance_insights,
            deletion_protection=protect,
            vpc_id=network.vpc_id,
            subnet_ids=network.database_subnet_ids,
            client_security_group_ids=[cluster.cluster_security_group_id],
            region=cfg.region,
            command_provider=command_provider,
        ),
        opts,
    )
    cache = Cache(
        f"{prefix}-cache",
        CacheArgs(
            replication_group_id=f"{prefix}-valkey",
            engine_version=cfg.cache.engine_version,
            parameter_group_family=VALKEY_PARAMETER_FAMILIES[cfg.cache.engine_version],
            node_type=cfg.cache.node_type,
            replicas=cfg.cache.replicas,
            high_availability=cfg.cache.high_availability,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            client_security_group_ids=[cluster.cluster_security_group_id],
            snapshot_retention_days=cfg.cache.snapshot_retention_days,
            protect=protect,
        ),
        opts,
    )
    registry = Registry(
        f"{prefix}-registry",
        RegistryArgs(
            name_prefix=prefix,
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
            name_prefix=prefix,
            workloads=WORKLOAD_SPECS,
            cluster_name=cluster.name,
            bucket_arns=store.bucket_arns,
            kms_key_arn=store.kms_key_arn,
        ),
        opts,
    )
    k8s_provider = kubernetes_provider(cluster.contract)
    outputs = build_platform(
        cfg,
        cluster=cluster.contract,
        store=store.contract,
        database=database.contract,
        cache=cache.contract,
        registry=registry.contract,
        identity=identity.contract,
        random_provider=random_provider,
        provider=k8s_provider,
    )
    # Karpenter's controller and NodePools on the same cluster (its AWS side: the cluster)
    Karpenter(
        f"{prefix}-karpenter",
        KarpenterArgs(
            spec=cluster.karpenter,
            replicas=controller_replicas(cfg.cluster.system_nodes.desired_size),
            resources=controller_resources(cfg.cluster.karpenter_controller_size),
            tags=cfg.base_tags(),
        ),
        pulumi.ResourceOptions(providers=[k8s_provider]),
    )
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
