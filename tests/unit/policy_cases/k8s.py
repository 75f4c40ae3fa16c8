"""Fixtures of the Kubernetes rules added for issue #17: NetworkPolicies open to the world,
pod rules read on every workload kind and every container list (regular, init, ephemeral),
and RBAC roles and bindings."""

from __future__ import annotations

from typing import Any

from policies.model import SECRET_SIG, SIG_KEY
from policies.rules_k8s import POD_SPEC_PATHS

DIGEST = "registry.example/api@sha256:" + "b" * 64
SECURE_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def container(name: str = "app", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": DIGEST,
        "securityContext": dict(SECURE_CONTEXT),
        "resources": {"limits": {"cpu": "1", "memory": "512Mi"}},
        **fields,
    }


def workload(kind: str, **pod: Any) -> tuple[str, dict[str, Any]]:
    """A workload of any kind (`Pod`, `CronJob`, ...) around one pod spec; the pod spec gets a
    secure container unless `containers` is given."""
    (type_,) = [t for t in POD_SPEC_PATHS if t.endswith(f":{kind}")]
    spec: dict[str, Any] = {"containers": [container()], **pod}
    node: dict[str, Any] = spec
    for part in reversed(POD_SPEC_PATHS[type_]):
        node = {part: node}
    node["metadata"] = {"name": kind.lower(), "namespace": "apps"}
    return (type_, node)


NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE = "kubernetes:core/v1:Service"
PROXIES = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "platform"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "envoy"}},
}


def netpol(*ingress: dict[str, Any], types: list[str] | None = None) -> tuple[str, Any]:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": list(ingress)}
    if types is not None:
        spec["policyTypes"] = types
    return (NETPOL, {"metadata": {"name": "allow", "namespace": "data"}, "spec": spec})


def tcp(port: Any, end: int | None = None) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port, **({"endPort": end} if end else {})}


WORLD = {"ipBlock": {"cidr": "0.0.0.0/0"}}

RBAC = "kubernetes:rbac.authorization.k8s.io/v1"
ROLE, CLUSTER_ROLE = f"{RBAC}:Role", f"{RBAC}:ClusterRole"
ROLE_BINDING, CLUSTER_ROLE_BINDING = f"{RBAC}:RoleBinding", f"{RBAC}:ClusterRoleBinding"
READ_PODS = {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}
READ_SECRETS = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}
SA = {"kind": "ServiceAccount", "name": "ci", "namespace": "platform"}
TEAM = {"kind": "Group", "name": "data-team", "apiGroup": "rbac.authorization.k8s.io"}
ALICE = {"kind": "User", "name": "alice@example.com", "apiGroup": "rbac.authorization.k8s.io"}


def role(*rules: dict[str, Any], kind: str = ROLE, name: str = "reader") -> tuple[str, Any]:
    meta = {"name": name, **({"namespace": "apps"} if kind.endswith(":Role") else {})}
    return (kind, {"metadata": meta, "rules": list(rules)})


def bind(
    role_name: str,
    *subjects: dict[str, Any],
    kind: str = ROLE_BINDING,
    role_kind: str = "ClusterRole",
) -> tuple[str, Any]:
    meta = {
        "name": f"{role_name}-binding",
        **({"namespace": "apps"} if "Cluster" not in kind else {}),
    }
    return (
        kind,
        {
            "metadata": meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": role_kind,
                "name": role_name,
            },
            "subjects": list(subjects),
        },
    )


def release(**values: Any) -> tuple[str, dict[str, Any]]:
    return (
        "kubernetes:helm.sh/v3:Release",
        {"chart": "example", "namespace": "apps", "values": values},
    )


def with_context(**changes: Any) -> dict[str, Any]:
    return {"securityContext": {**SECURE_CONTEXT, **changes}}


CASES: dict[str, Any] = {
    # the world may reach web ports (the Gateway's proxies) and pods only from named peers;
    # not a database port, nor every port, from 0.0.0.0/0 or from a rule without `from`
    "K8S-021": (
        [
            netpol({"from": [WORLD], "ports": [tcp(10443)]}),
            netpol({"from": [PROXIES], "ports": [tcp(5432)]}),
            netpol({"from": [{"namespaceSelector": {}}], "ports": [tcp(6379)]}),
            netpol({"ports": [tcp(5432)]}, types=["Egress"]),
        ],
        [
            netpol({"from": [WORLD], "ports": [tcp(5432)]}),
            netpol({"ports": [tcp("redis")]}),
            netpol({"from": [{"ipBlock": {"cidr": "::/0"}}], "ports": [tcp(9000, 9300)]}),
            netpol(
                {"from": [PROXIES]},
                {"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]},
            ),
            netpol({}),
        ],
    ),
    # procMount Unmasked in an ephemeral (debug) container of a Pod, an init container of a
    # DaemonSet, a CronJob's container
    "K8S-022": (
        [
            workload(
                "Pod", ephemeralContainers=[container("debug", **with_context(procMount="Default"))]
            ),
            workload("DaemonSet"),
        ],
        [
            workload(
                "Pod",
                ephemeralContainers=[container("debug", **with_context(procMount="Unmasked"))],
            ),
            workload(
                "DaemonSet",
                initContainers=[container("init", **with_context(procMount="Unmasked"))],
            ),
            workload("CronJob", containers=[container(**with_context(procMount="Unmasked"))]),
        ],
    ),
    "K8S-023": (
        [
            workload(
                "StatefulSet",
                securityContext={
                    "sysctls": [
                        {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"},
                        {"name": "net/ipv4/tcp_keepalive_time", "value": "600"},
                        {"name": "kernel.shm_rmid_forced", "value": "1"},
                    ]
                },
            ),
        ],
        [
            workload(
                "Job",
                securityContext={"sysctls": [{"name": "net.core.somaxconn", "value": "4096"}]},
            ),
            workload(
                "ReplicaSet",
                securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "65536"}]},
            ),
            workload(
                "Deployment",
                hostNetwork=True,
                securityContext={"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]},
            ),
        ],
    ),
    "K8S-024": (
        [
            workload(
                "Deployment",
                containers=[
                    container(
                        env=[
                            {
                                "name": "PGPASSWORD",
                                "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                            },
                            {"name": "PGPASSWORD_FILE", "value": "/etc/dex/db/password"},
                            {"name": "AWS_ACCESS_KEY_ID", "value": "AKIAEXAMPLE"},
                            {"name": "JWT_SECRET_NAME", "value": "api-jwt"},
                            {"name": "TOKENIZERS_PARALLELISM", "value": "false"},
                            {"name": "MAX_TOKENS", "value": "512"},
                            {
                                "name": "DATABASE_URL",
                                "value": "postgresql://api@db.internal:5432/api",
                            },
                        ]
                    )
                ],
            ),
            release(
                env=[{"name": "DEX_LAKE_URL", "value": "s3://lake"}],
                createUserJob={
                    "env": [
                        {
                            "name": "ADMIN_PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "admin", "key": "password"}},
                        }
                    ]
                },
                extraEnvVars={"PGSSLMODE": "verify-full"},
            ),
        ],
        [
            workload(
                "Deployment",
                containers=[container(env=[{"name": "PGPASSWORD", "value": "hunter2"}])],
            ),
            workload(
                "Job",
                initContainers=[container("migrate", env=[{"name": "db-password", "value": "x1"}])],
            ),
            workload(
                "CronJob",
                containers=[
                    container(
                        env=[{"name": "DATABASE_URL", "value": "postgresql://api:hunter2@db/api"}]
                    )
                ],
            ),
            workload(
                "StatefulSet",
                containers=[
                    container(
                        env=[{"name": "API_TOKEN", "value": {SIG_KEY: SECRET_SIG, "value": "t"}}]
                    )
                ],
            ),
            # a chart's rendered pods are opaque, but not the env we pass it in values
            release(controller={"env": [{"name": "GITHUB_TOKEN", "value": "ghp_example"}]}),
            release(extraEnvVars={"MLFLOW_TRACKING_PASSWORD": "hunter2"}),
        ],
    ),
    "K8S-025": (
        [role(READ_PODS), role(READ_PODS, kind=CLUSTER_ROLE)],
        [
            role({"apiGroups": ["*"], "resources": ["deployments"], "verbs": ["get"]}),
            role({"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}, kind=CLUSTER_ROLE),
            role({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]}),
            role({"nonResourceURLs": ["*"], "verbs": ["get"]}, kind=CLUSTER_ROLE),
        ],
    ),
    "K8S-026": (
        [
            role(READ_PODS),
            # delegation limited to one named role: what the RBAC docs recommend
            role(
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["clusterroles"],
                    "verbs": ["bind"],
                    "resourceNames": ["view"],
                },
                kind=CLUSTER_ROLE,
            ),
        ],
        [
            role({"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}),
            role(
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["clusterroles"],
                    "verbs": ["escalate"],
                },
                kind=CLUSTER_ROLE,
            ),
            role(
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["rolebindings", "roles"],
                    "verbs": ["*"],
                }
            ),
        ],
    ),
    "K8S-027": (
        [
            role(READ_PODS),
            role({**READ_SECRETS, "resourceNames": ["api-tls"]}),
        ],
        [
            role(READ_SECRETS),
            role({"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}),
            role(
                {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]},
                kind=CLUSTER_ROLE,
            ),
            role(
                {
                    "apiGroups": ["admissionregistration.k8s.io"],
                    "resources": ["mutatingwebhookconfigurations"],
                    "verbs": ["patch"],
                },
                kind=CLUSTER_ROLE,
            ),
        ],
    ),
    "K8S-028": (
        [
            bind("view", TEAM),
            bind(
                "system:public-info-viewer",
                {"kind": "Group", "name": "system:unauthenticated"},
                kind=CLUSTER_ROLE_BINDING,
            ),
        ],
        [
            bind("view", {"kind": "User", "name": "system:anonymous"}, kind=CLUSTER_ROLE_BINDING),
            bind("reader", {"kind": "Group", "name": "system:unauthenticated"}, role_kind="Role"),
            bind(
                "view", {"kind": "Group", "name": "system:authenticated"}, kind=CLUSTER_ROLE_BINDING
            ),
        ],
    ),
    "K8S-029": (
        [
            bind("view", SA, TEAM),
            bind("cluster-admin", ALICE, kind=CLUSTER_ROLE_BINDING),  # a named break-glass user
            bind("admin", SA, role_kind="Role"),  # a namespace Role that happens to be called admin
        ],
        [
            bind("cluster-admin", SA, kind=CLUSTER_ROLE_BINDING),
            bind("edit", TEAM),
            bind("admin", {"kind": "User", "name": "system:serviceaccount:apps:api"}),
        ],
    ),
    "K8S-S03": (
        [
            # reading Secrets in its own namespace; a wildcard role bound only to a named user
            role(READ_SECRETS),
            bind("reader", SA, role_kind="Role"),
            role(
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                kind=CLUSTER_ROLE,
                name="ops",
            ),
            bind("ops", ALICE, kind=CLUSTER_ROLE_BINDING),
        ],
        [
            role(READ_SECRETS, kind=CLUSTER_ROLE, name="secret-reader"),
            bind("secret-reader", SA, kind=CLUSTER_ROLE_BINDING),
            role({"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]}),
            bind("reader", TEAM, role_kind="Role"),
        ],
    ),
}
