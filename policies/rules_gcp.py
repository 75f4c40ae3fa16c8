"""GCP rules: firewall, subnets and networks, IAM, KMS; and the helpers the GCP rule modules
share.

The other GCP rules live by service family: GCS, Cloud SQL and Memorystore in
`policies/rules_gcp_data.py`; GKE and Artifact Registry in `policies/rules_gcp_cluster.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from policies.model import (
    ALWAYS,
    PROD,
    WORLD,
    Subject,
    as_list,
    resource_rule,
)

FIREWALL = "gcp:compute/firewall:Firewall"
SUBNET = "gcp:compute/subnetwork:Subnetwork"
PROJECT_IAM = (
    "gcp:projects/iAMMember:IAMMember",
    "gcp:projects/iAMBinding:IAMBinding",
)


def _members(r: Subject) -> list[str]:
    return [str(m) for m in [r.get("member"), *as_list(r.get("members"))] if m]


# -- network --------------------------------------------------------------------------------------


def _world_allows(r: Subject) -> list[tuple[str, list[str]]]:
    if r.get("direction", "INGRESS") != "INGRESS" or r.get("disabled") is True:
        return []
    if not any(src in WORLD for src in as_list(r.get("sourceRanges"))):
        return []
    return [
        (str(a.get("protocol")), [str(p) for p in as_list(a.get("ports"))])
        for a in as_list(r.get("allows"))
    ]


def _port_in(port: int, ports: list[str]) -> bool:
    if not ports:
        return True
    for p in ports:
        low, _, high = p.partition("-")
        if int(low) <= port <= int(high or low):
            return True
    return False


@resource_rule(
    "GCP-NET-001",
    "No firewall rule opens SSH or RDP to the internet",
    "critical",
    ALWAYS,
    [FIREWALL],
    "Remove the 0.0.0.0/0 source; use IAP TCP forwarding.",
    ["CIS-GCP-2.0.0:3.6", "CIS-GCP-2.0.0:3.7"],
)
def fw_admin(r: Subject) -> Iterator[str]:
    for protocol, ports in _world_allows(r):
        for port in (22, 3389):
            if protocol in ("tcp", "all") and _port_in(port, ports):
                yield f"port {port} open to the internet"


@resource_rule(
    "GCP-NET-002",
    "Firewall rules open only web ports to the internet",
    "high",
    ALWAYS,
    [FIREWALL],
    "Only load balancers accept internet traffic, on 80/443.",
)
def fw_world(r: Subject) -> Iterator[str]:
    for protocol, ports in _world_allows(r):
        if protocol not in ("tcp",) or not ports or not set(ports) <= {"80", "443"}:
            yield f"{protocol} {','.join(ports) or 'all ports'} open to the internet"


@resource_rule(
    "GCP-NET-003",
    "Subnets log flows and reach Google privately",
    "medium",
    PROD,
    [SUBNET],
    "Set log_config and private_ip_google_access true.",
    ["CIS-GCP-2.0.0:3.8"],
)
def subnet_flow_logs(r: Subject) -> Iterator[str]:
    if not r.get("logConfig"):
        yield "flow logs are off"
    if r.get("privateIpGoogleAccess") is not True:
        yield "Private Google Access is off"


@resource_rule(
    "GCP-NET-004",
    "Networks are custom mode",
    "medium",
    ALWAYS,
    ["gcp:compute/network:Network"],
    "Set auto_create_subnetworks false.",
    ["CIS-GCP-2.0.0:3.1"],
)
def network_custom(r: Subject) -> Iterator[str]:
    if r.get("autoCreateSubnetworks", True) is not False:
        yield "auto-mode network (a subnet with default firewall rules in every region)"


# -- IAM and KMS ----------------------------------------------------------------------------------


@resource_rule(
    "GCP-IAM-001",
    "No user-managed service account keys",
    "high",
    ALWAYS,
    ["gcp:serviceaccount/key:Key"],
    "Use Workload Identity (in GKE) or Workload Identity Federation (in CI) instead of keys.",
    ["CIS-GCP-2.0.0:1.4"],
)
def sa_keys(r: Subject) -> Iterator[str]:
    yield "a service account key is a long-lived credential"


@resource_rule(
    "GCP-IAM-002",
    "No basic roles (owner, editor) granted",
    "critical",
    ALWAYS,
    list(PROJECT_IAM),
    "Grant predefined roles scoped to the need.",
    ["CIS-GCP-2.0.0:1.5"],
)
def no_basic_roles(r: Subject) -> Iterator[str]:
    if r.get("role") in ("roles/owner", "roles/editor"):
        yield f"{r.get('role')} granted to {', '.join(_members(r))}"


@resource_rule(
    "GCP-IAM-003",
    "No project-wide service account impersonation",
    "high",
    ALWAYS,
    list(PROJECT_IAM),
    "Grant iam.serviceAccountUser / TokenCreator on one service account.",
    ["CIS-GCP-2.0.0:1.6"],
)
def no_project_impersonation(r: Subject) -> Iterator[str]:
    if r.get("role") in ("roles/iam.serviceAccountUser", "roles/iam.serviceAccountTokenCreator"):
        yield f"{r.get('role')} on the whole project"


@resource_rule(
    "GCP-IAM-004",
    "Storage roles are bucket-level, not project-wide",
    "high",
    ALWAYS,
    list(PROJECT_IAM),
    "Bind storage roles on the buckets the workload needs.",
)
def no_project_storage(r: Subject) -> Iterator[str]:
    if str(r.get("role", "")).startswith("roles/storage."):
        yield f"{r.get('role')} on every bucket of the project"


@resource_rule(
    "GCP-KMS-001",
    "Cloud KMS keys rotate within 90 days",
    "medium",
    ALWAYS,
    ["gcp:kms/cryptoKey:CryptoKey"],
    "Set rotation_period to 7776000s or less.",
    ["CIS-GCP-2.0.0:1.10"],
)
def kms_rotation(r: Subject) -> Iterator[str]:
    period = r.get("rotationPeriod")
    match = re.fullmatch(r"(\d+)(?:\.\d+)?s", str(period or ""))
    if not match or int(match.group(1)) > 90 * 24 * 3600:
        yield f"rotationPeriod is {period!r}"
