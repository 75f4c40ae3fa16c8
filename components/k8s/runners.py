"""CI runners inside the stack's network: actions-runner-controller (ARC) on the platform's own
cluster, with one runner scale set named `dex-<stack>`. The clusters' API endpoints are private,
so the workflows that preview, deploy or check drift run there (`runs-on: dex-<stack>`), never
on GitHub-hosted runners (docs/ci.md, docs/adr/0002-ci-inside-the-network.md).

What lands on the cluster:
- namespace `arc-systems`: the controller (chart `gha-runner-scale-set-controller`, watching only
  the runners' namespace) and the scale set's listener pod, which the controller starts there;
- namespace `arc-runners`: the scale set (chart `gha-runner-scale-set`) and its ephemeral runner
  pods, one per job. They run as the image's unprivileged `runner` user (uid 1001), with no
  Kubernetes API token, no privilege escalation, no capabilities, no Docker daemon (no
  docker-in-docker: the jobs only run Python and pulumi) and no cloud identity of their own:
  each job gets the stack's role through GitHub's OIDC token;
- in both namespaces a default-deny NetworkPolicy, then DNS, HTTPS (443) to the internet
  (GitHub, the cloud APIs, Pulumi Cloud, PyPI) and the Kubernetes API; nothing may connect in.
  The link-local range (instance metadata, the Pod Identity agent) stays closed.

The scale set authenticates to GitHub as a GitHub App whose credentials are in a Kubernetes
Secret the operator creates in `arc-runners` (`github_app_secret`; keys `github_app_id`,
`github_app_installation_id`, `github_app_private_key`): never in the repository, the config or
the Pulumi state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.k8s.base import (
    MANAGED_BY,
    Chart,
    container_security,
    helm_release,
    pod_security,
    resources,
    untyped,
)

ARC_VERSION = "0.15.1"
"""actions-runner-controller's charts (both released together); gha-runner-scale-set-0.15.1,
23 Oct 2026, the latest release on github.com/actions/actions-runner-controller/releases."""
ARC_CHARTS = "oci://ghcr.io/actions/actions-runner-controller-charts"
CONTROLLER_CHART = f"{ARC_CHARTS}/gha-runner-scale-set-controller"
SCALE_SET_CHART = f"{ARC_CHARTS}/gha-runner-scale-set"
RUNNER_IMAGE = "ghcr.io/actions/actions-runner:2.338.1"
"""The runner ARC 0.15.1 ships with. GitHub refuses jobs to runners older than its support
window, and ephemeral runners do not update themselves: bump this with each runner release."""

CONTROLLER_NS = "arc-systems"
RUNNERS_NS = "arc-runners"
CONTROLLER_RELEASE = "arc"
CONTROLLER_SERVICE_ACCOUNT = "arc-controller"
RUNNER_UID = 1001
"""The `runner` user of the ARC runner image."""
CONTROLLER_UID = 65532
"""The distroless `nonroot` user of the controller (and listener) image."""
WORK_DIR = "/home/runner/_work"
READ_ROLE = "dex-ci-read"
READ_VERBS = ("get", "list")
"""What CI's refresh and preview need on the cluster: pulumi-kubernetes reads each object it
manages by name (get) and, to judge a Deployment, Job or Service, lists what they own; Helm
finds its release records by label (list). Neither watches (only create and update wait). A
preview's server-side dry run is a write this role refuses: pulumi-kubernetes then previews
client-side (provider.go, Create/Update: `req.GetPreview() && IsForbidden`)."""

_PODS = ("", "pods")
_EG = "gateway.envoyproxy.io/v1alpha1"
_RBAC = "rbac.authorization.k8s.io/v1"


def _reads(
    kind: str, plural: str, *owned: tuple[str, str]
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """`group/version:Kind` -> its type token, its own (apiGroup, resource) and what reading
    it lists."""
    group = kind.split("/", maxsplit=1)[0]
    return f"kubernetes:{kind}", (("" if group == "core" else group, plural), *owned)


CI_READS: dict[str, tuple[tuple[str, str], ...]] = dict(
    [
        # pulumi-kubernetes v4.32.0 provider/pkg/await: Deployment.Read lists its ReplicaSets,
        # Pods and claims, Job.Read its Pods, Service.Read the Endpoints
        _reads(
            "apps/v1:Deployment", "deployments",
            ("apps", "replicasets"), _PODS, ("", "persistentvolumeclaims"),
        ),
        _reads("autoscaling/v2:HorizontalPodAutoscaler", "horizontalpodautoscalers"),
        _reads("batch/v1:CronJob", "cronjobs"),
        _reads("batch/v1:Job", "jobs", _PODS),
        _reads("cert-manager.io/v1:Certificate", "certificates"),
        _reads("cert-manager.io/v1:ClusterIssuer", "clusterissuers"),
        _reads("core/v1:ConfigMap", "configmaps"),
        _reads("core/v1:Namespace", "namespaces"),
        _reads("core/v1:Secret", "secrets"),
        _reads("core/v1:Service", "services", ("", "endpoints")),
        _reads("core/v1:ServiceAccount", "serviceaccounts"),
        _reads(f"{_EG}:BackendTrafficPolicy", "backendtrafficpolicies"),
        _reads(f"{_EG}:ClientTrafficPolicy", "clienttrafficpolicies"),
        _reads(f"{_EG}:EnvoyProxy", "envoyproxies"),
        _reads(f"{_EG}:SecurityPolicy", "securitypolicies"),
        _reads("gateway.networking.k8s.io/v1:Gateway", "gateways"),
        _reads("gateway.networking.k8s.io/v1:GatewayClass", "gatewayclasses"),
        _reads("gateway.networking.k8s.io/v1:HTTPRoute", "httproutes"),
        _reads("karpenter.k8s.aws/v1:EC2NodeClass", "ec2nodeclasses"),
        _reads("karpenter.sh/v1:NodePool", "nodepools"),
        _reads("monitoring.coreos.com/v1:PrometheusRule", "prometheusrules"),
        _reads("monitoring.coreos.com/v1:ServiceMonitor", "servicemonitors"),
        _reads("networking.k8s.io/v1:NetworkPolicy", "networkpolicies"),
        _reads("policy/v1:PodDisruptionBudget", "poddisruptionbudgets"),
        _reads(f"{_RBAC}:ClusterRole", "clusterroles"),
        _reads(f"{_RBAC}:ClusterRoleBinding", "clusterrolebindings"),
        _reads("storage.k8s.io/v1:StorageClass", "storageclasses"),
        # components whose children the plan does not show: a Helm release is read from its
        # release records (Secrets, found by label); the ConfigGroup applies CRDs
        ("kubernetes:helm.sh/v3:Release", (("", "secrets"),)),
        (
            "kubernetes:yaml/v2:ConfigGroup",
            (("apiextensions.k8s.io", "customresourcedefinitions"),),
        ),
    ]
)  # fmt: skip
"""Every Kubernetes type the stacks manage (tests/unit/test_runners.py compares the keys with
the types of the four synthesized plans) -> the (apiGroup, resource) pairs a refresh of it
reads."""


def read_rules() -> list[dict[str, Any]]:
    """The rules of `dex-ci-read`: get and list on what CI_READS names, one rule per API
    group, and Secrets in a rule of their own.

    Secrets stay readable cluster-wide: a refresh reads the stack's own Secrets by name, and
    each Helm release's records, which Helm finds by label; `resourceNames` cannot narrow a
    list (the name is not part of a list's authorization), and a Role per namespace would need
    the platform's namespaces to exist before this component, which nothing here orders."""
    groups: dict[str, set[str]] = {}
    for reads in CI_READS.values():
        for group, resource in reads:
            groups.setdefault(group, set()).add(resource)
    groups[""].discard("secrets")
    rules = [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(READ_VERBS)}
        for group, resources in sorted(groups.items())
    ]
    return [*rules, {"apiGroups": [""], "resources": ["secrets"], "verbs": list(READ_VERBS)}]


LINK_LOCAL = "169.254.0.0/16"
INTERNET = [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [LINK_LOCAL]}}]


def scale_set_name(stack: str) -> str:
    """The runner scale set of a stack, and the only label its runners answer to: the value of
    `runs-on` in the workflows (toolchain/ci_reach/ checks them against the same name)."""
    return f"dex-{stack}"


@dataclass(frozen=True)
class CiRunnersArgs:
    """What the in-network CI runners need from the stack."""

    stack: str
    """The stack whose cluster hosts the runners; the scale set is named `dex-<stack>`."""
    github_config_url: str
    """Where the runners register: the repository (`https://github.com/OWNER/REPO`), or an
    organization (`https://github.com/OWNER`) with a runner group restricted to it."""
    github_app_secret: str = "dex-ci-github-app"
    """The Kubernetes Secret in `arc-runners` with the GitHub App's `github_app_id`,
    `github_app_installation_id` and `github_app_private_key`, created by the operator
    (docs/ci.md). Defaults to `dex-ci-github-app`."""
    min_runners: int = 0
    """Idle runners kept waiting. Defaults to 0: a runner pod starts per job."""
    max_runners: int = 3
    """Runners at most, i.e. concurrent jobs on this stack. Defaults to 3 (a deploy, a drift
    check and a PR preview at once)."""
    runner_cpu: str = "1"
    """CPU request of a runner pod (limit: 2x). Defaults to one core."""
    runner_memory: str = "4Gi"
    """Memory of a runner pod (request = limit): the program, the pulumi CLI and its provider
    plugins. Defaults to 4 GiB."""
    work_volume_gib: int = 20
    """Size limit of the job's working directory (an emptyDir: the checkout, the virtualenv,
    the provider plugins). Defaults to 20 GiB."""
    runner_image: str = RUNNER_IMAGE
    """The runner image. Defaults to the one pinned with the charts."""
    node_selector: dict[str, str] | None = None
    """Nodes the runner, listener and controller pods go to (e.g. the system pool). Defaults to
    any node."""
    cluster_readers: tuple[str, ...] = ()
    """Kubernetes users (GKE: the read-only CI service accounts' emails) bound to the ClusterRole
    `dex-ci-read`: get and list on every kind the stacks manage and what a refresh of them
    lists, Secrets included (Helm keeps its release records in Secrets; `read_rules`). EKS
    grants read through access entries (`AmazonEKSAdminViewPolicy`,
    `dex:cluster.view_role_arns`): leave it empty there. Defaults to none."""


_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_GITHUB_URL = re.compile(r"^https://github\.com/[A-Za-z0-9][A-Za-z0-9-]*(/[A-Za-z0-9._-]+)?$")
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti)?$")


def validate_args(args: CiRunnersArgs) -> None:
    """Refuse Args that would give a runner set GitHub or Kubernetes rejects."""
    errors = []
    label = scale_set_name(args.stack)
    if not _NAME.match(args.stack) or len(label) > 45:
        errors.append(
            f"`stack` must be lower-case letters, digits and '-' (the scale set `{label}` must "
            f"be at most 45 characters), got {args.stack!r}"
        )
    if not _GITHUB_URL.match(args.github_config_url):
        errors.append(
            "`github_config_url` must be https://github.com/OWNER or https://github.com/OWNER/REPO,"
            f" got {args.github_config_url!r}"
        )
    if not _NAME.match(args.github_app_secret) or len(args.github_app_secret) > 253:
        errors.append(
            f"`github_app_secret` must be a Kubernetes object name, got {args.github_app_secret!r}"
        )
    if args.min_runners < 0:
        errors.append(f"`min_runners` must be at least 0, got {args.min_runners}")
    if args.max_runners < max(1, args.min_runners):
        errors.append(
            f"`max_runners` must be at least 1 and at least `min_runners` ({args.min_runners}), "
            f"got {args.max_runners}"
        )
    for field_name, value in (
        ("runner_cpu", args.runner_cpu),
        ("runner_memory", args.runner_memory),
    ):
        if not _QUANTITY.match(value):
            errors.append(f"`{field_name}` must be a Kubernetes quantity, got {value!r}")
    if not 5 <= args.work_volume_gib <= 200:
        errors.append(f"`work_volume_gib` must be 5 to 200, got {args.work_volume_gib}")
    if ":" not in args.runner_image.rsplit("/", 1)[-1] and "@" not in args.runner_image:
        errors.append(f"`runner_image` must be pinned (a tag or digest), got {args.runner_image!r}")
    for reader in args.cluster_readers:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.iam\.gserviceaccount\.com", reader):
            errors.append(
                f"`cluster_readers` takes service account emails (...@PROJECT.iam.gserviceaccount"
                f".com), got {reader!r}"
            )
    if errors:
        raise ValueError("CiRunners: " + "; ".join(errors))


def _double(cpu: str) -> str:
    milli = int(cpu[:-1]) if cpu.endswith("m") else int(float(cpu) * 1000)
    return f"{milli * 2}m"


def runner_pod_spec(args: CiRunnersArgs) -> dict[str, Any]:
    """The runner pod: Pod Security `restricted`, no API token, no Docker daemon. The root
    filesystem stays writable: jobs install Python, pulumi, gcloud and the AWS CLI into the
    runner's home and tool cache."""
    security = {**container_security(), "readOnlyRootFilesystem": False}
    limits = resources(args.runner_cpu, args.runner_memory, cpu_limit=_double(args.runner_cpu))
    limits["requests"]["ephemeral-storage"] = "4Gi"
    limits["limits"]["ephemeral-storage"] = f"{args.work_volume_gib + 10}Gi"
    spec: dict[str, Any] = {
        "securityContext": pod_security(RUNNER_UID),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [
            {
                "name": "runner",
                "image": args.runner_image,
                "command": ["/home/runner/run.sh"],
                "securityContext": security,
                "resources": limits,
                "volumeMounts": [{"name": "work", "mountPath": WORK_DIR}],
            }
        ],
        "volumes": [{"name": "work", "emptyDir": {"sizeLimit": f"{args.work_volume_gib}Gi"}}],
    }
    if args.node_selector:
        spec["nodeSelector"] = dict(args.node_selector)
    return spec


def listener_pod_spec(args: CiRunnersArgs) -> dict[str, Any]:
    """What the controller merges into the scale set's listener pod (container `listener`):
    the controller image's non-root user, no capabilities, a read-only root filesystem."""
    spec: dict[str, Any] = {
        "securityContext": pod_security(CONTROLLER_UID),
        "containers": [
            {
                "name": "listener",
                "securityContext": container_security(),
                "resources": resources("50m", "128Mi", cpu_limit="500m"),
            }
        ],
    }
    if args.node_selector:
        spec["nodeSelector"] = dict(args.node_selector)
    return spec


def controller_values(args: CiRunnersArgs) -> dict[str, Any]:
    """The controller chart: one replica watching only `arc-runners`, hardened."""
    values: dict[str, Any] = {
        "replicaCount": 1,
        "serviceAccount": {"create": True, "name": CONTROLLER_SERVICE_ACCOUNT},
        "podSecurityContext": pod_security(CONTROLLER_UID),
        "securityContext": container_security(),
        "resources": resources("100m", "256Mi", cpu_limit="1000m"),
        "flags": {"logLevel": "info", "logFormat": "json", "watchSingleNamespace": RUNNERS_NS},
    }
    if args.node_selector:
        values["nodeSelector"] = dict(args.node_selector)
    return values


def scale_set_values(args: CiRunnersArgs) -> dict[str, Any]:
    """The scale set chart: `dex-<stack>`, GitHub App credentials by Secret name only, the
    default container mode (no `containerMode`: no dind, no Kubernetes-mode job pods)."""
    return {
        "githubConfigUrl": args.github_config_url,
        "githubConfigSecret": args.github_app_secret,
        "runnerScaleSetName": scale_set_name(args.stack),
        "minRunners": args.min_runners,
        "maxRunners": args.max_runners,
        "controllerServiceAccount": {
            "namespace": CONTROLLER_NS,
            "name": CONTROLLER_SERVICE_ACCOUNT,
        },
        "listenerTemplate": {"spec": listener_pod_spec(args)},
        "template": {"metadata": {"labels": dict(MANAGED_BY)}, "spec": runner_pod_spec(args)},
    }


def network_policy_specs(namespace: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, spec) of the NetworkPolicies of one of the two namespaces, default deny first."""
    del namespace  # both namespaces allow the same: the listener and the runners both call out
    dns = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    return [
        ("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        (
            "allow-dns",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": dns,
                        "ports": [
                            {"port": 53, "protocol": "UDP"},
                            {"port": 53, "protocol": "TCP"},
                        ],
                    }
                ],
            },
        ),
        (
            # GitHub (jobs, OIDC tokens, actions), the cloud APIs, Pulumi Cloud, PyPI
            "allow-https-out",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"to": INTERNET, "ports": [{"port": 443, "protocol": "TCP"}]}],
            },
        ),
        (
            # the cluster's API server (its private endpoint listens on 443; 6443 where the
            # `kubernetes` Service maps to it)
            "allow-kube-api-out",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": INTERNET,
                        "ports": [
                            {"port": 443, "protocol": "TCP"},
                            {"port": 6443, "protocol": "TCP"},
                        ],
                    }
                ],
            },
        ),
    ]


def controller_chart() -> Chart:
    """The controller's release (an OCI chart: the reference is the whole oci:// URL, with
    no repository)."""
    return Chart(
        release=CONTROLLER_RELEASE,
        chart=CONTROLLER_CHART,
        version=ARC_VERSION,
        repo="",
        namespace=CONTROLLER_NS,
        timeout=600,
    )


def scale_set_chart(runner_label: str) -> Chart:
    """The scale set's release, named after its runners' label (an OCI chart)."""
    return Chart(
        release=runner_label,
        chart=SCALE_SET_CHART,
        version=ARC_VERSION,
        repo="",
        namespace=RUNNERS_NS,
        timeout=600,
    )


POD_SECURITY = {CONTROLLER_NS: "baseline", RUNNERS_NS: "restricted"}
"""`arc-runners` holds only the runner pods this file specifies: `restricted`. `arc-systems`
runs the chart's controller and the listener the controller builds (both hardened through
values, tested here, but rendered by code we do not vendor): `baseline` enforced, `restricted`
warned and audited, as for the platform's other third-party charts."""


class CiRunners(pulumi.ComponentResource):
    """actions-runner-controller and the stack's runner scale set. Type token
    `dex:k8s:CiRunners`."""

    runner_label: str
    """What workflows put in `runs-on` to reach this stack's network: `dex-<stack>`."""
    namespace: str
    """The runners' namespace, where the operator creates the GitHub App Secret."""
    controller: k8s.helm.v3.Release
    scale_set: k8s.helm.v3.Release

    def __init__(
        self, name: str, args: CiRunnersArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        validate_args(args)
        super().__init__("dex:k8s:CiRunners", name, None, opts)
        self.runner_label = scale_set_name(args.stack)
        controller_ns = self._namespace(name, "controller", CONTROLLER_NS)
        runners_ns = self._namespace(name, "runners", RUNNERS_NS)
        self.namespace = RUNNERS_NS
        self.controller = helm_release(
            f"{name}-controller",
            controller_chart(),
            controller_values(args),
            pulumi.ResourceOptions(parent=self, depends_on=[*controller_ns, runners_ns[0]]),
        )
        # after the controller: its CRDs define AutoscalingRunnerSet, and on delete it must
        # still run to remove the runners' finalizers
        self.scale_set = helm_release(
            f"{name}-scale-set",
            scale_set_chart(self.runner_label),
            scale_set_values(args),
            pulumi.ResourceOptions(parent=self, depends_on=[self.controller, *runners_ns]),
        )
        if args.cluster_readers:
            self._cluster_readers(name, args.cluster_readers)
        self.register_outputs(
            {
                "runner_label": self.runner_label,
                "namespace": self.namespace,
                "controller": self.controller.name,
                "scale_set": self.scale_set.name,
            }
        )

    def _namespace(self, name: str, key: str, ns: str) -> list[pulumi.Resource]:
        """The namespace `ns` with its Pod Security labels, then its NetworkPolicies; returns
        them all, the namespace first."""
        level = POD_SECURITY[ns]
        namespace = k8s.core.v1.Namespace(
            f"{name}-{key}-namespace",
            metadata=untyped(
                {
                    "name": ns,
                    "labels": {
                        **MANAGED_BY,
                        "pod-security.kubernetes.io/enforce": level,
                        "pod-security.kubernetes.io/enforce-version": "latest",
                        "pod-security.kubernetes.io/warn": "restricted",
                        "pod-security.kubernetes.io/audit": "restricted",
                    },
                }
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        created: list[pulumi.Resource] = [namespace]
        for policy, spec in network_policy_specs(ns):
            created.append(
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-{key}-{policy}",
                    metadata=untyped({"name": policy, "namespace": ns, "labels": MANAGED_BY}),
                    spec=untyped(spec),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
                )
            )
        return created

    def _cluster_readers(self, name: str, readers: tuple[str, ...]) -> None:
        """The ClusterRole `dex-ci-read` and its binding to `readers`."""
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-read",
            metadata=untyped({"name": READ_ROLE, "labels": MANAGED_BY}),
            rules=untyped(read_rules()),
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-read-binding",
            metadata=untyped({"name": READ_ROLE, "labels": MANAGED_BY}),
            role_ref=untyped(
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": READ_ROLE,
                }
            ),
            subjects=untyped(
                [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": reader}
                    for reader in sorted(readers)
                ]
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role]),
        )
