"""A first `pulumi up` into an empty account, simulated over a plan.

The mock engine accepts almost anything; a real first deploy fails on the engine's own rules,
on creation order, on network reachability, on TLS trust and on the day-0 state. Each check
here reads a plan (a `dex plan` or a real `pulumi stack export`) and names what a real deploy
would trip over, so the class of defect fails a test instead of a deploy:

- `engine_rules`: every custom resource and every invoke has an explicit provider of its own
  package, or a default provider the stack's `pulumi:disable-default-providers` still allows
  (`["*"]` denies every package but `pulumi`, `pulumi-python` included);
- `plugin_paths`: every path handed to a plugin (a docker-build context and Dockerfile)
  resolves from the folder the engine starts plugins in (the program's `main`);
- `creation_order`: over the dependency graph (what the engine may create in parallel):
  objects of custom kinds, including those a Helm release renders, wait for their CRD;
  volume claims for a default StorageClass; everything that runs pods for node capacity and
  the network/DNS add-ons; identity bindings for the cluster whose pool they name; service
  accounts for their bindings; pods for the Secrets and ConfigMaps they mount;
- `reachability`: every connection a workload needs (Postgres and the cache on their real
  ports, MLflow, OTLP, the Pushgateway, DNS, cloud APIs, the identity agent) is allowed by the
  NetworkPolicies at both ends, and the cluster enforces NetworkPolicies at all;
- `tls_trust`: every client that verifies a server has the server's CA in its container;
- `cold_start`: the API becomes ready on a stack that has no data and no model yet.

`waves` lists what a first deploy creates, wave by wave, with what each wave waits for.

Each check lives in its own module: `providers` (engine rules), `plugins` (plugin paths),
`order` (creation order, one function per rule family, over `graph` and `crds`), `reach`
(reachability, over the NetworkPolicy model in `netpol`), `tls` (TLS trust), `day0` (cold
start) and `report` (`check_plan`, `describe_waves`); `model` and `objects` hold what they
share.
"""

from __future__ import annotations

from toolchain.first_deploy.day0 import DAY0_READY_CHECKS, cold_start
from toolchain.first_deploy.graph import Graph
from toolchain.first_deploy.model import (
    BUILTIN_GROUPS,
    CLUSTERS,
    CONFIG_GROUP,
    DEFAULT_CLASS_ANNOTATION,
    EKS_ADDON,
    EKS_NETWORK_ADDONS,
    HTTP_ROUTE,
    NODE_CAPACITY,
    POD_KINDS,
    RELEASE,
    STORAGE_CLASS,
    Finding,
)
from toolchain.first_deploy.netpol import (
    EXTERNAL,
    Connection,
    Endpoint,
    allowed,
    namespace_labels,
    network_policies,
)
from toolchain.first_deploy.objects import k8s_objects, pod_spec, release_values
from toolchain.first_deploy.order import creation_order
from toolchain.first_deploy.plugins import plugin_paths
from toolchain.first_deploy.providers import disabled_default_providers, engine_rules
from toolchain.first_deploy.reach import network_policy_enforced, reachability, required_connections
from toolchain.first_deploy.report import check_plan, describe_waves, waits_summary
from toolchain.first_deploy.tls import tls_trust

# the names the tests reach the NetworkPolicy model by (tests/unit/test_k8s.py,
# tests/unit/test_first_deploy.py)
_allowed = allowed
_policies = network_policies
_namespace_labels = namespace_labels

__all__ = [
    "BUILTIN_GROUPS",
    "CLUSTERS",
    "CONFIG_GROUP",
    "DAY0_READY_CHECKS",
    "DEFAULT_CLASS_ANNOTATION",
    "EKS_ADDON",
    "EKS_NETWORK_ADDONS",
    "EXTERNAL",
    "HTTP_ROUTE",
    "NODE_CAPACITY",
    "POD_KINDS",
    "RELEASE",
    "STORAGE_CLASS",
    "Connection",
    "Endpoint",
    "Finding",
    "Graph",
    "allowed",
    "check_plan",
    "cold_start",
    "creation_order",
    "describe_waves",
    "disabled_default_providers",
    "engine_rules",
    "k8s_objects",
    "namespace_labels",
    "network_policies",
    "network_policy_enforced",
    "plugin_paths",
    "pod_spec",
    "reachability",
    "release_values",
    "required_connections",
    "tls_trust",
    "waits_summary",
]
