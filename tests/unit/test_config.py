"""The typed stack config: profiles, overrides, and one clear error per bad value."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from stacks.config import AwsStackConfig, ConfigError, GcpStackConfig, StackConfig, load_config
from stacks.stackfiles import read_stack_file
from tests.conftest import ROOT
from toolchain.synth import run_program

pytestmark = pytest.mark.unit

AWS = {"cloud": "aws", "environment": "dev", "region": "eu-west-1"}
AWS_PROD = {**AWS, "environment": "prod"}
GCP = {"cloud": "gcp", "environment": "dev", "region": "europe-west1", "gcp_project": "dex-test-1"}

# (config, text every error must contain: the key and the value or what is allowed)
BAD_CONFIGS: list[tuple[str, dict[str, object], list[str]]] = [
    ("unknown top key", {**AWS, "databse": {}}, ["dex:databse", "did you mean dex:database"]),
    (
        "unknown nested key",
        {**AWS, "database": {"instance_clas": "db.t4g.large"}},
        ["dex:database.instance_clas", "did you mean dex:database.instance_class"],
    ),
    ("missing cloud", {"environment": "dev", "region": "eu-west-1"}, ["dex:cloud is required"]),
    ("bad cloud", {**AWS, "cloud": "azure"}, ["dex:cloud", "'azure'", "'aws', 'gcp'"]),
    (
        "a GCP key on AWS",
        {**AWS, "network": {"pods_cidr": "10.64.0.0/14"}},
        ["dex:network.pods_cidr is not a known key", "availability_zones"],
    ),
    (
        "an AWS key on GCP",
        {**GCP, "cache": {"node_type": "cache.t4g.small"}},
        ["dex:cache.node_type is not a known key", "memory_size_gib"],
    ),
    ("a GCP project on AWS", {**AWS, "gcp_project": "dex-test-1"}, ["dex:gcp_project"]),
    (
        "bad environment",
        {**AWS, "environment": "prd"},
        ["dex:environment", "'prd'", "did you mean 'prod'"],
    ),
    (
        "region of no cloud",
        {**AWS, "region": "eu-west-9"},
        ["dex:region", "'eu-west-9'", "not an AWS region", "did you mean"],
    ),
    (
        "gcp region on aws",
        {**AWS, "region": "europe-west1"},
        ["dex:region", "'europe-west1'", "AWS region"],
    ),
    (
        "aws region on gcp",
        {**GCP, "region": "eu-west-1"},
        ["dex:region", "'eu-west-1'", "GCP region"],
    ),
    (
        "wrong type int",
        {**AWS, "database": {"backup_retention_days": "seven"}},
        ["dex:database.backup_retention_days", "'seven'", "whole number"],
    ),
    (
        "wrong type bool",
        {**AWS, "storage": {"access_logging": "sometimes"}},
        ["dex:storage.access_logging", "'sometimes'", "true or false"],
    ),
    ("section not a mapping", {**AWS, "network": "10.0.0.0/16"}, ["dex:network", "mapping"]),
    (
        "malformed cidr",
        {**AWS, "network": {"cidr": "10.0.0.0/33"}},
        ["dex:network.cidr", "10.0.0.0/33", "IPv4 CIDR"],
    ),
    (
        "cidr with host bits",
        {**AWS, "network": {"cidr": "10.0.0.1/16"}},
        ["dex:network.cidr", "10.0.0.1/16"],
    ),
    (
        "vpc too small",
        {**AWS, "network": {"cidr": "10.0.0.0/24"}},
        ["dex:network.cidr", "10.0.0.0/24", "/16 to /20"],
    ),
    (
        "overlapping cidrs",
        {**GCP, "network": {"pods_cidr": "10.0.0.0/14"}},
        ["dex:network.pods_cidr", "10.0.0.0/14", "overlaps dex:network.cidr"],
    ),
    (
        "prod unprotected",
        {**AWS_PROD, "deletion_protection": False},
        ["dex:deletion_protection", "acknowledge_unprotected_prod"],
    ),
    (
        "prod short backups",
        {**AWS_PROD, "database": {"backup_retention_days": 3}},
        ["dex:database.backup_retention_days", "3", "at least 7"],
    ),
    (
        "gcp without project",
        {k: v for k, v in GCP.items() if k != "gcp_project"},
        ["dex:gcp_project is required"],
    ),
    ("bad gcp project", {**GCP, "gcp_project": "My_Project"}, ["dex:gcp_project", "'My_Project'"]),
    (
        "node bounds",
        {**AWS, "cluster": {"system_nodes": {"min_size": 5}}},
        ["dex:cluster.system_nodes", "min_size=5", "max_size=3"],
    ),
    (
        "negative count",
        {**AWS, "cluster": {"batch_nodes": {"max_size": 0}}},
        ["dex:cluster.batch_nodes.max_size", "0"],
    ),
    (
        "unsupported k8s",
        {**AWS, "cluster": {"kubernetes_version": "1.20"}},
        ["dex:cluster.kubernetes_version", "'1.20'", "'1.34'"],
    ),
    (
        "world-open endpoint",
        {**AWS, "cluster": {"public_access_cidrs": ["0.0.0.0/0"]}},
        ["dex:cluster.public_access_cidrs", "0.0.0.0/0"],
    ),
    (
        "aws instance class on gcp",
        {**GCP, "database": {"instance_class": "db.t4g.medium"}},
        ["dex:database.instance_class", "'db.t4g.medium'", "Cloud SQL tier"],
    ),
    (
        "bad cache node",
        {**AWS, "cache": {"node_type": "t3.micro"}},
        ["dex:cache.node_type", "'t3.micro'"],
    ),
    (
        "ha without replicas",
        {**AWS, "cache": {"high_availability": True, "replicas": 0}},
        ["dex:cache", "replicas"],
    ),
    (
        "reserved tag",
        {**AWS, "tags": {"environment": "staging"}},
        ["dex:tags.environment", "reserved"],
    ),
    ("bad gcp label", {**GCP, "tags": {"CostCenter": "x"}}, ["CostCenter", "GCP label key"]),
    (
        "archive before ia",
        {**AWS, "storage": {"raw_archive_after_days": 31, "raw_infrequent_access_after_days": 60}},
        ["raw_archive_after_days", "31", "60"],
    ),
    ("not json", {**AWS, "cluster": "{not json"}, ["dex:cluster", "mapping"]),
    (
        "two azs only",
        {**AWS, "region": "us-west-1"},
        ["dex:network.availability_zones", "us-west-1"],
    ),
    (
        "domain not a dns name",
        {**AWS, "platform": {"domain": "Dex_Platform"}},
        ["dex:platform.domain", "'Dex_Platform'", "not a DNS name"],
    ),
    (
        "acme without email",
        {**AWS, "platform": {"tls_issuer": "acme"}},
        ["dex:platform.acme_email", "contact address"],
    ),
    (
        "jwks without url",
        {**AWS, "platform": {"api_auth": "jwks", "api_jwt_issuer": "https://id.example.com/"}},
        ["dex:platform.api_jwks_url", "https://"],
    ),
    (
        "replicas inverted",
        {**AWS, "platform": {"api_min_replicas": 5, "api_max_replicas": 2}},
        ["dex:platform.api_max_replicas = 2", "api_min_replicas = 5"],
    ),
    (
        "bad cron",
        {**AWS, "platform": {"training_schedule": "every day"}},
        ["dex:platform.training_schedule", "'every day'", "cron"],
    ),
    (
        "unknown rollout mode",
        {**AWS, "platform": {"api_rollout": "blue-green"}},
        ["dex:platform.api_rollout", "'blue-green'", "'shadow'", "'canary'"],
    ),
    (
        "canary without a share",
        {**AWS, "platform": {"api_rollout": "canary"}},
        ["dex:platform.api_canary_share = 0.0", "api_rollout canary", "above 0"],
    ),
    (
        "shadow with a zero share",
        {**AWS, "platform": {"api_rollout": "shadow", "api_shadow_share": 0}},
        ["dex:platform.api_shadow_share = 0.0", "api_rollout shadow", "above 0"],
    ),
    (
        "canary share above 1",
        {**AWS, "platform": {"api_rollout": "canary", "api_canary_share": 1.5}},
        ["dex:platform.api_canary_share = 1.5", "less than or equal to 1"],
    ),
    (
        "negative shadow share",
        {**AWS, "platform": {"api_shadow_share": -0.1}},
        ["dex:platform.api_shadow_share = -0.1", "greater than or equal to 0"],
    ),
    (
        "share not a number",
        {**AWS, "platform": {"api_canary_share": "a tenth"}},
        ["dex:platform.api_canary_share", "'a tenth'", "a number"],
    ),
    (
        "bad model-ops cron",
        {**AWS, "platform": {"model_ops_schedule": "after gold"}},
        ["dex:platform.model_ops_schedule", "'after gold'", "cron"],
    ),
    (
        "mae threshold not positive",
        {**AWS, "platform": {"model_mae_alert_celsius": 0}},
        ["dex:platform.model_mae_alert_celsius = 0", "greater than 0"],
    ),
    (
        "unknown platform key",
        {**AWS, "platform": {"domian": "x.example.com"}},
        ["dex:platform.domian", "did you mean dex:platform.domain"],
    ),
    (
        "admin role not a role arn",
        {**AWS, "cluster": {"admin_role_arns": ["arn:aws:iam::123456789012:user/alice"]}},
        ["dex:cluster.admin_role_arns", "user/alice", "not an IAM role ARN"],
    ),
    (
        "view role not an arn",
        {**AWS, "cluster": {"view_role_arns": ["dex-drift"]}},
        ["dex:cluster.view_role_arns", "'dex-drift'", "not an IAM role ARN"],
    ),
    (
        "role both admin and view",
        {
            **AWS,
            "cluster": {
                "admin_role_arns": ["arn:aws:iam::123456789012:role/ci"],
                "view_role_arns": ["arn:aws:iam::123456789012:role/ci"],
            },
        },
        ["dex:cluster.view_role_arns", "role/ci", "one EKS access entry"],
    ),
]


def test_cluster_access_roles_accept_role_arns_with_paths() -> None:
    cfg = load_config(
        {
            **AWS,
            "cluster": {
                "admin_role_arns": ["arn:aws:iam::123456789012:role/dex-deploy"],
                "view_role_arns": ["arn:aws-us-gov:iam::123456789012:role/ci/dex-drift"],
            },
        }
    )
    assert cfg.cluster.admin_role_arns == ["arn:aws:iam::123456789012:role/dex-deploy"]
    assert load_config(AWS).cluster.view_role_arns == []


@pytest.mark.parametrize(("case", "raw", "expected"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_gives_one_clear_error(
    case: str, raw: dict[str, object], expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(raw, stack="t")
    message = str(info.value)
    for part in expected:
        assert part in message, f"{case}: {part!r} not in {message!r}"
    assert "Traceback" not in message
    assert "pydantic" not in message.lower()  # no library internals leak to the user


def test_at_least_fifteen_bad_configs() -> None:
    assert len(BAD_CONFIGS) >= 15


def test_profiles_differ_where_they_should() -> None:
    dev, prod = load_config(AWS), load_config(AWS_PROD)
    assert (dev.network.nat_gateways, prod.network.nat_gateways) == ("single", "per_az")
    assert (dev.database.high_availability, prod.database.high_availability) == (False, True)
    assert (dev.deletion_protection, prod.deletion_protection) == (False, True)
    assert dev.database.backup_retention_days < prod.database.backup_retention_days
    assert prod.cluster.batch_nodes.spot
    assert not dev.cluster.batch_nodes.spot
    assert prod.cache.high_availability
    assert prod.cache.replicas >= 1
    assert prod.storage.access_logging
    assert not dev.storage.access_logging


def test_each_cloud_has_its_own_model_chosen_by_dex_cloud() -> None:
    """A discriminated union on `dex:cloud`: each cloud's keys only on its own model, no
    placeholder values for the other cloud."""
    from pydantic import TypeAdapter

    from stacks.config import AnyStackConfig, AwsStackConfig, GcpStackConfig

    aws, gcp = load_config(AWS), load_config(GCP)
    assert isinstance(aws, AwsStackConfig)
    assert isinstance(gcp, GcpStackConfig)
    assert not hasattr(aws, "gcp_project")
    assert not hasattr(aws.network, "pods_cidr")
    assert not hasattr(gcp.cache, "node_type")
    assert not hasattr(gcp.network, "availability_zones")
    adapter: TypeAdapter[AwsStackConfig | GcpStackConfig] = TypeAdapter(AnyStackConfig)
    assert type(adapter.validate_python(gcp.model_dump())) is GcpStackConfig
    assert type(adapter.validate_python(aws.model_dump())) is AwsStackConfig


def test_environments_differ_only_through_knobs() -> None:
    """Every difference between dev and prod is a key with a profile default, so a dev
    stack can take any prod behaviour (and the program reads no environment name)."""
    gdev, gprod = load_config(GCP), load_config({**GCP, "environment": "prod"})
    assert isinstance(gdev, GcpStackConfig)
    assert isinstance(gprod, GcpStackConfig)
    assert (gdev.cluster.regional, gprod.cluster.regional) == (False, True)
    assert (gdev.cluster.encrypt_secrets, gprod.cluster.encrypt_secrets) == (False, True)
    assert (gdev.storage.cmek, gprod.storage.cmek) == (False, True)
    for section in (gdev.database, gdev.cache, gdev.registry):
        assert section.cmek is False
    for section in (gprod.database, gprod.cache, gprod.registry):
        assert section.cmek is True
    dev, prod = load_config(AWS), load_config(AWS_PROD)
    assert isinstance(dev, AwsStackConfig)
    assert isinstance(prod, AwsStackConfig)
    assert (dev.cache.snapshot_retention_days, prod.cache.snapshot_retention_days) == (1, 7)
    assert (dev.cluster.karpenter_controller_size, prod.cluster.karpenter_controller_size) == (
        "small",
        "upstream",
    )
    assert (dev.platform.service_replicas, prod.platform.service_replicas) == (1, 2)
    assert (dev.platform.metrics_retention_days, prod.platform.metrics_retention_days) == (7, 30)
    told = load_config(
        {
            **AWS,
            "platform": {"service_replicas": 2},
            "cluster": {"karpenter_controller_size": "upstream"},
        }
    )
    assert told.platform.service_replicas == 2
    deciders = re.compile(r'is_prod|environment\s*[!=]=\s*"prod"|"prod"\s*[!=]=')
    program = [*(ROOT / "stacks").rglob("*.py"), *(ROOT / "components").rglob("*.py")]
    readers = sorted(
        p.relative_to(ROOT).as_posix() for p in program if deciders.search(p.read_text())
    )
    assert readers == ["stacks/config/stack.py"], "only the config's prod rules read the name"


def test_cloud_profiles_choose_cloud_sizes() -> None:
    assert load_config(AWS).database.instance_class.startswith("db.")
    assert load_config(GCP).database.instance_class.startswith("db-custom")


def test_user_key_overrides_profile_and_keeps_siblings() -> None:
    cfg = load_config({**AWS_PROD, "database": {"instance_class": "db.r7g.xlarge"}})
    assert cfg.database.instance_class == "db.r7g.xlarge"
    assert cfg.database.high_availability is True  # sibling still from the prod profile


def test_pulumi_style_string_values_are_decoded() -> None:
    # The engine hands structured config as JSON strings and scalars as strings.
    raw = {
        **AWS,
        "database": json.dumps({"storage_gib": "50", "high_availability": "true"}),
        "tags": json.dumps({"cost-center": "42"}),
    }
    cfg = load_config(raw)
    assert cfg.database.storage_gib == 50
    assert cfg.database.high_availability is True
    assert cfg.tags == {"cost-center": "42"}


def test_rollout_knobs_default_off_and_accept_the_apps_values() -> None:
    from components.k8s import slo

    for raw in (AWS, AWS_PROD, GCP):
        p = load_config(raw).platform
        assert (p.api_rollout, p.api_canary_share, p.api_shadow_share) == ("off", 0.0, 1.0)
        assert p.model_ops_schedule == "30 6 * * *"
        assert p.model_mae_alert_celsius == slo.MODEL_MAE_ALERT_CELSIUS
    canary = load_config(
        {**AWS, "platform": json.dumps({"api_rollout": "canary", "api_canary_share": "0.25"})}
    ).platform
    assert (canary.api_rollout, canary.api_canary_share) == ("canary", 0.25)
    # a share of 1 sends every caller to the challenger: allowed, it is a full switch
    assert (
        load_config(
            {**AWS, "platform": {"api_rollout": "canary", "api_canary_share": 1}}
        ).platform.api_canary_share
        == 1.0
    )
    # shares are kept while the rollout is off: turning it on is one key
    assert load_config({**AWS, "platform": {"api_canary_share": 0.1}}).platform.api_rollout == "off"


def test_a_bare_yaml_off_means_off() -> None:
    """YAML 1.1 (PyYAML, what `dex` reads stack files with) reads `api_rollout: off` as false."""
    import yaml

    raw = yaml.safe_load("platform:\n  api_rollout: off\n")
    assert raw["platform"]["api_rollout"] is False
    assert load_config({**AWS, **raw}).platform.api_rollout == "off"
    with pytest.raises(ConfigError, match=r"dex:platform\.api_rollout = True"):
        load_config({**AWS, "platform": {"api_rollout": True}})


@pytest.mark.parametrize("stack", ["dev", "prod", "gcp-dev", "gcp-prod"])
def test_shipped_stacks_keep_the_rollout_off(stack: str) -> None:
    stack_file = read_stack_file(stack)
    assert stack_file.config["dex:platform"]["api_rollout"] == "off"


def test_prod_unprotected_with_acknowledgement_is_allowed() -> None:
    cfg = load_config(
        {**AWS_PROD, "deletion_protection": False, "acknowledge_unprotected_prod": True}
    )
    assert cfg.deletion_protection is False


def test_config_is_frozen() -> None:
    cfg = load_config(AWS)
    with pytest.raises(Exception, match="frozen"):
        cfg.region = "us-east-1"  # type: ignore[misc]
    assert isinstance(cfg, StackConfig)


def test_bad_config_registers_no_resource() -> None:
    import pulumi

    stack_file = read_stack_file("prod")
    with pytest.raises(pulumi.RunError, match=r"dex:database\.storage_gib"):
        run_program(stack_file, overrides={"dex:database": {"storage_gib": "lots"}})


def test_bad_config_registers_nothing_before_failing() -> None:
    import toolchain.synth as synth_module
    from toolchain.synth import RecordingMonitor

    seen: list[RecordingMonitor] = []
    original = synth_module.RecordingMonitor

    class Spy(original):  # type: ignore[misc, valid-type]
        def __init__(self, *a: object) -> None:
            super().__init__(*a)
            seen.append(self)

    synth_module.RecordingMonitor = Spy  # type: ignore[misc]
    try:
        with pytest.raises(Exception, match="dex:region"):
            run_program(read_stack_file("dev"), overrides={"dex:region": "mars-1"})
    finally:
        synth_module.RecordingMonitor = original  # type: ignore[misc]
    registered = [r.type for r in seen[0].records.values()]
    assert registered == ["pulumi:pulumi:Stack"]


def test_cli_reports_bad_config_without_traceback(tmp_project) -> None:  # type: ignore[no-untyped-def]
    (tmp_project / "Pulumi.broken.yaml").write_text(
        "config:\n  dex:cloud: aws\n  dex:environment: prod\n  dex:region: eu-west-1\n"
        "  dex:databse:\n    instance_class: db.r7g.large\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "dex.cli", "plan", "broken"],
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ, "DEX_PROJECT_DIR": str(tmp_project)},
    )
    assert proc.returncode == 2
    assert "dex:databse is not a known key" in proc.stderr
    assert "did you mean dex:database" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_readme_config_reference_matches_the_code(cloud: str) -> None:
    from stacks.config import reference_markdown
    from tests.conftest import ROOT

    readme = (ROOT / "docs" / "config.md").read_text()
    start = f"<!-- config-reference:{cloud} -->\n"
    end = f"<!-- /config-reference:{cloud} -->"
    block = readme[readme.index(start) + len(start) : readme.index(end)]
    assert block == reference_markdown(cloud), (
        f"docs/config.md table is stale: paste `dex config-reference {cloud}`"
    )  # type: ignore[arg-type]
