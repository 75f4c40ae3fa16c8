"""The defaults of every key: per environment (what both clouds share), then per cloud x
environment (each cloud's own keys, and sizes that differ per cloud). `load_config` merges
them under the user's keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ENV_PROFILES: dict[str, dict[str, Any]] = {
    "dev": {
        "owner": "platform-team",
        "deletion_protection": False,
        "network": {
            "cidr": "10.0.0.0/16",
        },
        "cluster": {
            "kubernetes_version": "1.35",
            "public_access_cidrs": [],
        },
        "database": {
            "engine_version": "17",
            "storage_gib": 20,
            "max_storage_gib": 100,
            "high_availability": False,
            "backup_retention_days": 1,
            "point_in_time_recovery": True,
            "performance_insights": False,
        },
        "cache": {"high_availability": False},
        "storage": {
            "raw_infrequent_access_after_days": 30,
            "raw_archive_after_days": 90,
            "noncurrent_version_expiration_days": 7,
            "access_logging": False,
            "force_destroy": False,
        },
        "registry": {"keep_images": 10},
        "platform": {
            "domain": "dev.dex.example.com",
            "tls_issuer": "self-signed",
            "api_min_replicas": 1,
            "api_max_replicas": 3,
            "api_auth": "hs256",
            "service_replicas": 1,
            "metrics_retention_days": 7,
        },
    },
    "prod": {
        "owner": "platform-team",
        "deletion_protection": True,
        "network": {
            "cidr": "10.0.0.0/16",
        },
        "cluster": {
            "kubernetes_version": "1.35",
            "public_access_cidrs": [],
        },
        "database": {
            "engine_version": "17",
            "storage_gib": 100,
            "max_storage_gib": 1000,
            "high_availability": True,
            "backup_retention_days": 14,
            "point_in_time_recovery": True,
            "performance_insights": True,
        },
        "cache": {"high_availability": True},
        "storage": {
            "raw_infrequent_access_after_days": 30,
            "raw_archive_after_days": 180,
            "noncurrent_version_expiration_days": 90,
            "access_logging": True,
            "force_destroy": False,
        },
        "registry": {"keep_images": 30},
        "platform": {
            "domain": "dex.example.com",
            "tls_issuer": "acme",
            "acme_email": "platform-team@example.com",
            "api_min_replicas": 2,
            "api_max_replicas": 10,
            "api_auth": "jwks",
            "api_jwks_url": "https://auth.example.com/.well-known/jwks.json",
            "api_jwt_issuer": "https://auth.example.com/",
            "service_replicas": 2,
            "metrics_retention_days": 30,
        },
    },
}

CLOUD_PROFILES: dict[tuple[str, str], dict[str, Any]] = {
    ("aws", "dev"): {
        "network": {
            "availability_zones": 3,
            "nat_gateways": "single",
            "flow_logs_retention_days": 14,
        },
        "cluster": {
            "log_retention_days": 7,
            "karpenter_controller_size": "small",
            "system_nodes": {
                "instance_types": ["t3.large"],
                "min_size": 1,
                "desired_size": 2,
                "max_size": 3,
                "disk_size_gib": 50,
                "spot": False,
            },
            "batch_nodes": {
                "instance_types": ["m6i.large", "m5.large"],
                "min_size": 0,
                "desired_size": 0,
                "max_size": 3,
                "disk_size_gib": 100,
                "spot": False,
            },
        },
        "database": {"instance_class": "db.t4g.medium"},
        "cache": {
            "engine_version": "8.1",
            "node_type": "cache.t4g.small",
            "replicas": 0,
            "snapshot_retention_days": 1,
        },
    },
    ("aws", "prod"): {
        "network": {
            "availability_zones": 3,
            "nat_gateways": "per_az",
            "flow_logs_retention_days": 365,
        },
        "cluster": {
            "log_retention_days": 90,
            "karpenter_controller_size": "upstream",
            "system_nodes": {
                "instance_types": ["m6i.large"],
                "min_size": 3,
                "desired_size": 3,
                "max_size": 6,
                "disk_size_gib": 100,
                "spot": False,
            },
            "batch_nodes": {
                "instance_types": ["m6i.2xlarge", "m5.2xlarge", "m6a.2xlarge"],
                "min_size": 0,
                "desired_size": 0,
                "max_size": 10,
                "disk_size_gib": 200,
                "spot": True,
            },
        },
        "database": {"instance_class": "db.r7g.large"},
        "cache": {
            "engine_version": "8.1",
            "node_type": "cache.r7g.large",
            "replicas": 1,
            "snapshot_retention_days": 7,
        },
    },
    ("gcp", "dev"): {
        "network": {
            "pods_cidr": "10.64.0.0/14",
            "services_cidr": "10.68.0.0/20",
            "private_services_cidr": "10.70.0.0/16",
            "control_plane_cidr": "172.16.0.0/28",
        },
        "cluster": {
            "release_channel": "REGULAR",
            "regional": False,
            "encrypt_secrets": False,
            "system_nodes": {
                "instance_types": ["e2-standard-4"],
                "min_size": 1,
                "desired_size": 1,
                "max_size": 3,
                "disk_size_gib": 50,
                "spot": False,
            },
            "batch_nodes": {
                "instance_types": ["n2-standard-4"],
                "min_size": 0,
                "desired_size": 0,
                "max_size": 3,
                "disk_size_gib": 100,
                "spot": False,
            },
        },
        # Cloud SQL keeps more daily backups than days of logs: 2 backups for 1 day of PITR.
        "database": {
            "instance_class": "db-custom-1-3840",
            "backup_retention_days": 2,
            "transaction_log_retention_days": 1,
            "cmek": False,
        },
        "cache": {"memory_size_gib": 1, "cmek": False},
        "storage": {"cmek": False},
        "registry": {"cmek": False},
    },
    ("gcp", "prod"): {
        "network": {
            "pods_cidr": "10.64.0.0/14",
            "services_cidr": "10.68.0.0/20",
            "private_services_cidr": "10.70.0.0/16",
            "control_plane_cidr": "172.16.0.0/28",
        },
        "cluster": {
            "release_channel": "STABLE",
            "regional": True,
            "encrypt_secrets": True,
            "system_nodes": {
                "instance_types": ["n2-standard-4"],
                "min_size": 1,
                "desired_size": 1,
                "max_size": 3,
                "disk_size_gib": 100,
                "spot": False,
            },
            "batch_nodes": {
                "instance_types": ["n2-standard-8"],
                "min_size": 0,
                "desired_size": 0,
                "max_size": 10,
                "disk_size_gib": 200,
                "spot": True,
            },
        },
        "database": {
            "instance_class": "db-custom-2-7680",
            "transaction_log_retention_days": 7,
            "cmek": True,
        },
        "cache": {"memory_size_gib": 5, "cmek": True},
        "storage": {"cmek": True},
        "registry": {"cmek": True},
    },
}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`, recursing into mappings; lists and scalars are replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
