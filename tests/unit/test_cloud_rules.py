"""Cloud API rules the providers enforce only at apply time, checked in the typed config, and
the cloud-side fixes of issue 14 that only show under a modified mock engine (invokes, ports,
what a component hands the Kubernetes side to wait for)."""

from __future__ import annotations

import json
import typing
from typing import Any

import pulumi_gcp as gcp
import pytest
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs

from components.aws.database import rds_ca_bundle_url
from components.contracts import ClusterOutputs, NodePoolArgs
from contracts.deployment import Plan, parse_plan
from stacks.config import (
    NAME_RULES,
    RDS_PARAMETER_FAMILIES,
    VALKEY_PARAMETER_FAMILIES,
    AwsCacheConfig,
    ConfigError,
    DatabaseConfig,
    cloud_sql_edition,
    load_config,
    name_problems,
    physical_names,
)
from stacks.stackfiles import read_stack_file
from tests.conftest import only
from toolchain.mocks import MOCK_CA_PEM, DexMocks
from toolchain.synth import run_program, synthesize

pytestmark = pytest.mark.unit

AWS = {"cloud": "aws", "environment": "dev", "region": "eu-west-1"}
GCP = {"cloud": "gcp", "environment": "dev", "region": "europe-west1", "gcp_project": "dex-test-1"}
GCP_PROD = {**GCP, "environment": "prod"}


def _errors(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(raw)
    return str(caught.value)


# -- Cloud SQL backups (finding 8) ----------------------------------------------------------


def test_gcp_dev_profile_keeps_more_backups_than_log_days() -> None:
    db = load_config(GCP).database
    assert db.transaction_log_retention_days < db.backup_retention_days
    prod = load_config(GCP_PROD).database
    assert prod.transaction_log_retention_days < prod.backup_retention_days


@pytest.mark.parametrize(("backups", "logs"), [(1, 1), (3, 3), (3, 5)])
def test_log_days_not_below_retained_backups_are_refused(backups: int, logs: int) -> None:
    text = _errors(
        {
            **GCP,
            "database": {
                "backup_retention_days": backups,
                "transaction_log_retention_days": logs,
            },
        }
    )
    assert f"dex:database.transaction_log_retention_days = {logs}" in text
    assert f"dex:database.backup_retention_days = {backups}" in text
    assert "backup retention should be > transaction log retention" in text


def test_enterprise_keeps_at_most_seven_days_of_logs() -> None:
    text = _errors(
        {**GCP_PROD, "database": {"backup_retention_days": 30, "transaction_log_retention_days": 8}}
    )
    assert "dex:database.transaction_log_retention_days = 8" in text
    assert "ENTERPRISE" in text
    assert "1 to 7 days" in text
    # a performance-optimized tier runs on Enterprise Plus: up to 35 days
    cfg = load_config(
        {
            **GCP_PROD,
            "database": {
                "instance_class": "db-perf-optimized-n-2",
                "backup_retention_days": 30,
                "transaction_log_retention_days": 14,
            },
        }
    )
    assert cloud_sql_edition(cfg.database.instance_class) == "ENTERPRISE_PLUS"


def test_the_rule_does_not_apply_to_aws() -> None:
    # RDS keeps one retention period for both backups and PITR
    cfg = load_config({**AWS, "database": {"backup_retention_days": 1}})
    assert cfg.database.backup_retention_days == 1


def test_the_edition_follows_the_tier() -> None:
    assert cloud_sql_edition("db-custom-2-7680") == "ENTERPRISE"
    assert cloud_sql_edition("db-f1-micro") == "ENTERPRISE"
    assert cloud_sql_edition("db-perf-optimized-n-4") == "ENTERPRISE_PLUS"


# -- parameter group families ----------------------------------------------------------------


def test_every_allowed_engine_version_has_its_parameter_family() -> None:
    versions = typing.get_args(DatabaseConfig.model_fields["engine_version"].annotation)
    assert set(versions) == set(RDS_PARAMETER_FAMILIES)
    for version, family in RDS_PARAMETER_FAMILIES.items():
        assert family == f"postgres{version}"
    valkey = typing.get_args(AwsCacheConfig.model_fields["engine_version"].annotation)
    assert set(valkey) == set(VALKEY_PARAMETER_FAMILIES)
    for version, family in VALKEY_PARAMETER_FAMILIES.items():
        assert family == f"valkey{version.split('.')[0]}"


@pytest.mark.parametrize("bad", ["14", "7.1", "redis7"])
def test_versions_without_a_family_are_refused(bad: str) -> None:
    assert "dex:database.engine_version" in _errors({**AWS, "database": {"engine_version": bad}})
    assert "dex:cache.engine_version" in _errors({**AWS, "cache": {"engine_version": bad}})


def test_rds_gets_the_family_of_its_version(synth: Any) -> None:
    plan = synth("dev", database={"engine_version": "16"})
    assert only(plan, "aws:rds/instance:Instance").inputs["engineVersion"] == "16"
    params = only(plan, "aws:rds/parameterGroup:ParameterGroup").inputs
    assert params["family"] == "postgres16"


# -- ElastiCache for Valkey (finding 12, Valkey instead of Redis OSS) ---------------------------


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_elasticache_runs_valkey(plans: dict[str, Plan], env: str) -> None:
    rg = only(plans[env], "aws:elasticache/replicationGroup:ReplicationGroup").inputs
    assert rg["engine"] == "valkey"
    assert rg["engineVersion"] == "8.1"
    assert rg["parameterGroupName"] == "default.valkey8"
    assert rg["port"] == 6379
    assert rg["transitEncryptionEnabled"] is True
    cache = only(plans[env], "dex:aws:Cache").outputs
    assert cache["port"] == 6379
    assert cache.get("ca_certificate") is None  # Amazon's CA: the system trust store


def test_valkey_7_gets_its_family(synth: Any) -> None:
    plan = synth("dev", cache={"engine_version": "7.2"})
    rg = only(plan, "aws:elasticache/replicationGroup:ReplicationGroup").inputs
    assert rg["parameterGroupName"] == "default.valkey7"


# -- physical names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "why"),
    [
        ("rds_identifier", "a" * 64, "64 characters, allowed 1-63"),
        ("rds_identifier", "dex--postgres", "shape"),
        ("rds_identifier", "dex-postgres-", "shape"),
        ("rds_identifier", "1dex", "shape"),
        ("rds_final_snapshot", "s" * 256, "256 characters, allowed 1-255"),
        ("elasticache_replication_group", "v" * 41, "41 characters, allowed 1-40"),
        ("eks_cluster", "e" * 101, "101 characters, allowed 1-100"),
        ("gke_cluster", "g" * 41, "41 characters, allowed 1-40"),
        ("gke_cluster", "Dex-gke", "shape"),
        ("memorystore_instance", "m" * 41, "41 characters, allowed 1-40"),
        ("service_account", "dex-a", "5 characters, allowed 6-30"),
        ("service_account", "d" * 31, "31 characters, allowed 6-30"),
        ("service_account", "dex-sa-", "shape"),
        ("gcs_bucket", "b" * 64, "64 characters, allowed 3-63"),
        ("gcs_bucket", "-bucket", "shape"),
    ],
)
def test_names_the_cloud_refuses_are_reported(kind: str, name: str, why: str) -> None:
    cfg = load_config(GCP if kind not in ("rds_identifier", "rds_final_snapshot") else AWS)
    (problem,) = name_problems(cfg, {kind: [name]})
    assert f"'{name}'" in problem
    assert NAME_RULES[kind].what in problem
    assert NAME_RULES[kind].source in problem
    assert why in problem


def test_cloud_sql_counts_the_project_in_its_98_characters() -> None:
    cfg = load_config({**GCP, "gcp_project": "p" * 30})
    assert name_problems(cfg, {"cloud_sql_instance": ["i" * 67]}) == []  # 30 + 1 + 67 = 98
    (problem,) = name_problems(cfg, {"cloud_sql_instance": ["i" * 68]})
    assert "99 characters, allowed 1-98" in problem


@pytest.mark.parametrize("stack", ["dev", "prod", "gcp-dev", "gcp-prod"])
def test_the_checked_names_are_the_names_the_program_registers(
    plans: dict[str, Plan], stack: str
) -> None:
    """The rules check the names the stacks really use: every checked name appears in the
    plan, and the shipped stacks have no problem."""
    raw = read_stack_file(stack).config
    cfg = load_config({k.removeprefix("dex:"): v for k, v in raw.items() if k.startswith("dex:")})
    assert name_problems(cfg) == []
    plan = plans[stack]
    registered = {
        str(r.inputs.get(key))
        for r in plan
        if r.custom
        for key in (
            "name",
            "identifier",
            "replicationGroupId",
            "accountId",
            "finalSnapshotIdentifier",
        )
        if key in r.inputs
    }
    for kind, names in physical_names(cfg).items():
        for name in names:
            assert name in registered, (kind, name)


def test_the_longest_project_id_still_fits() -> None:
    cfg = load_config({**GCP_PROD, "gcp_project": "a" + "b" * 29})
    assert name_problems(cfg) == []


# -- AWS: the RDS CA bundle (the contract's ca_certificate) -------------------------------------


class _RecordingMocks(DexMocks):
    def __init__(self, stack: str) -> None:
        super().__init__(stack)
        self.calls: list[MockCallArgs] = []

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        self.calls.append(args)
        return super().call(args)


def test_rds_ca_bundle_is_fetched_with_an_explicit_command_provider() -> None:
    mocks = _RecordingMocks("dev")
    plan = parse_plan(json.loads(json.dumps(synthesize("dev", mocks=mocks))), "dev")
    (run,) = [c for c in mocks.calls if c.token == "command:local:run"]
    region = only(plan, "pulumi:providers:aws").inputs["region"]
    assert run.args["command"] == f"curl -fsSL {rds_ca_bundle_url(region)}"
    # default providers are disabled: the invoke names the stack's own command provider
    provider = only(plan, "pulumi:providers:command")
    assert run.provider.startswith(provider.urn)
    db = only(plan, "dex:aws:Database").outputs
    assert db["sslmode"] == "verify-full"
    assert db["ca_certificate"] == MOCK_CA_PEM


def test_rds_ca_bundle_urls() -> None:
    assert rds_ca_bundle_url("eu-west-1") == (
        "https://truststore.pki.rds.amazonaws.com/eu-west-1/eu-west-1-bundle.pem"
    )
    gov = "https://truststore.pki.us-gov-west-1.rds.amazonaws.com"
    assert rds_ca_bundle_url("us-gov-east-1") == f"{gov}/us-gov-east-1/us-gov-east-1-bundle.pem"
    china = "https://rds-truststore.s3.cn-north-1.amazonaws.com.cn"
    assert rds_ca_bundle_url("cn-northwest-1") == (
        f"{china}/cn-northwest-1/cn-northwest-1-bundle.pem"
    )


# -- GCP: Memorystore's port and the cluster's readiness ------------------------------------------


class _OtherPortMocks(DexMocks):
    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        rid, out = super().new_resource(args)
        if args.typ == "gcp:redis/instance:Instance":
            out = {**out, "port": 6390}
        return rid, out


def test_memorystore_contract_uses_the_port_the_instance_reports() -> None:
    doc = synthesize("gcp-dev", mocks=_OtherPortMocks("gcp-dev"))
    plan = parse_plan(json.loads(json.dumps(doc)), "gcp-dev")
    assert only(plan, "dex:gcp:Cache").outputs["port"] == 6390


def test_gke_ready_holds_the_node_pools_and_the_node_roles() -> None:
    from components.gcp.cluster import NODE_ROLES, Cluster, ClusterArgs

    captured: dict[str, ClusterOutputs] = {}
    pool = NodePoolArgs(["e2-standard-4"], 1, 1, 3, 50, False)

    def program() -> None:
        cluster = Cluster(
            "t",
            ClusterArgs(
                project="dex-test-1",
                project_number="1",
                region="europe-west1",
                regional=False,
                zone="europe-west1-b",
                cluster_name="t-gke",
                kubernetes_version="1.34",
                release_channel="REGULAR",
                network="n",
                subnetwork="s",
                control_plane_cidr="172.16.0.0/28",
                public_access_cidrs=[],
                node_cidr="10.0.0.0/16",
                system_nodes=pool,
                batch_nodes=pool,
                encrypt_secrets=False,
                protect=False,
            ),
        )
        captured["contract"] = cluster.contract

    run_program(read_stack_file("gcp-dev"), program=program)
    contract = captured["contract"]
    pools = [r for r in contract.ready if isinstance(r, gcp.container.NodePool)]
    roles = [r for r in contract.ready if isinstance(r, gcp.projects.IAMMember)]
    assert len(pools) == 2
    assert len(roles) == len(NODE_ROLES)
    assert len(contract.ready) == len(pools) + len(roles)
    assert contract.default_storage_class is None  # GKE ships standard-rwo
