"""Kubernetes RBAC rules: what Roles and ClusterRoles grant (wildcards, the verbs that escalate,
the grants that amount to them) and whom RoleBindings and ClusterRoleBindings grant it to
(anonymous and all-authenticated subjects, service accounts and groups given admin roles).

Only objects the program declares are visible: the RBAC a Helm chart renders lives inside its
Release and is judged by neither this pack nor the plan."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from policies.model import (
    ADVISE,
    ALWAYS,
    UNKNOWN,
    StackSubject,
    Subject,
    Unknowable,
    as_list,
    resource_rule,
    stack_rule,
)

_RBAC = "kubernetes:rbac.authorization.k8s.io/v1"
ROLE, CLUSTER_ROLE = f"{_RBAC}:Role", f"{_RBAC}:ClusterRole"
ROLE_BINDING, CLUSTER_ROLE_BINDING = f"{_RBAC}:RoleBinding", f"{_RBAC}:ClusterRoleBinding"
ROLES = (ROLE, CLUSTER_ROLE, f"{ROLE}Patch", f"{CLUSTER_ROLE}Patch")
"""A server-side-apply patch replaces the whole `rules` list (an atomic list), so what a
patch's rules grant is what the role grants."""
BINDINGS = (
    ROLE_BINDING,
    CLUSTER_ROLE_BINDING,
    f"{ROLE_BINDING}Patch",
    f"{CLUSTER_ROLE_BINDING}Patch",
)


def _strings(value: Any, what: str) -> list[str]:
    if value == UNKNOWN:
        raise Unknowable(what)
    items = as_list(value)
    if UNKNOWN in items:
        raise Unknowable(what)
    return [str(v) for v in items]


@dataclass(frozen=True)
class PolicyRule:
    """One entry of a role's `rules`."""

    verbs: tuple[str, ...]
    groups: tuple[str, ...]
    resources: tuple[str, ...]
    names: tuple[str, ...]
    urls: tuple[str, ...]

    def grants(self, verb: str, group: str, resource: str) -> bool:
        """Whether the rule allows `verb` on `resource` (`pods/exec` for a subresource) in the
        API group `group` ("" for the core group), by name or by wildcard."""
        sub = resource.partition("/")[2]
        return (
            (verb in self.verbs or "*" in self.verbs)
            and (group in self.groups or "*" in self.groups)
            and (
                resource in self.resources
                or "*" in self.resources
                or (bool(sub) and f"*/{sub}" in self.resources)
            )
        )


def role_rules(r: Subject) -> list[PolicyRule]:
    found = []
    for raw in as_list(r.get("rules")):
        if raw == UNKNOWN:
            raise Unknowable("rules")
        if not isinstance(raw, Mapping):
            continue
        found.append(
            PolicyRule(
                tuple(_strings(raw.get("verbs"), "verbs")),
                tuple(_strings(raw.get("apiGroups"), "apiGroups")),
                tuple(_strings(raw.get("resources"), "resources")),
                tuple(_strings(raw.get("resourceNames"), "resourceNames")),
                tuple(_strings(raw.get("nonResourceURLs"), "nonResourceURLs")),
            )
        )
    return found


def wildcards(rule: PolicyRule) -> list[str]:
    found = []
    if "*" in rule.verbs:
        found.append("every verb")
    if "*" in rule.groups:
        found.append("every API group")
    if any("*" in res for res in rule.resources):
        found.append("every resource" if "*" in rule.resources else "a resource wildcard")
    if "*" in rule.urls:
        found.append("every non-resource URL")
    return found


ESCALATING = {
    "escalate": [
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "clusterroles"),
    ],
    "bind": [("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "clusterroles")],
    "impersonate": [
        ("", "users"),
        ("", "groups"),
        ("", "serviceaccounts"),
        ("authentication.k8s.io", "uids"),
    ],
}
"""The verbs that sidestep RBAC itself: `escalate` writes a role with more than its author
holds, `bind` binds a role its author does not hold, `impersonate` acts as someone else."""


def escalations(rule: PolicyRule) -> list[str]:
    """The escalating verbs a rule grants (named, or through a wildcard), unless it is limited
    to named objects (`resourceNames`: the delegation the RBAC docs recommend)."""
    if rule.names:
        return []
    return [
        verb
        for verb, targets in ESCALATING.items()
        if verb in rule.verbs
        or any(rule.grants(verb, group, resource) for group, resource in targets)
    ]


POWERFUL: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("", "secrets", ("get", "list", "watch"), "reads Secrets"),
    ("", "pods", ("create",), "creates pods (running as any service account of the namespace)"),
    ("", "pods/exec", ("create", "get"), "execs into pods"),
    ("", "pods/attach", ("create", "get"), "attaches to pods"),
    ("", "persistentvolumes", ("create",), "creates PersistentVolumes (hostPath ones included)"),
    ("", "nodes/proxy", ("get", "create"), "reaches the kubelet API through nodes/proxy"),
    ("", "serviceaccounts/token", ("create",), "mints service account tokens"),
    (
        "certificates.k8s.io",
        "certificatesigningrequests/approval",
        ("update", "patch"),
        "approves certificate signing requests",
    ),
    (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        ("create", "update", "patch", "delete"),
        "changes validating webhooks",
    ),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        ("create", "update", "patch", "delete"),
        "changes mutating webhooks",
    ),
)
"""Grants that amount to more than they say (CIS Kubernetes 5.1.2, 5.1.4, 5.1.9-5.1.13)."""


def powerful(rule: PolicyRule) -> list[str]:
    if rule.names:
        return []  # limited to named objects
    return [
        what
        for group, resource, verbs, what in POWERFUL
        if any(rule.grants(verb, group, resource) for verb in verbs)
    ]


def _reads_secrets(rule: PolicyRule) -> bool:
    return not rule.names and any(rule.grants(v, "", "secrets") for v in ("get", "list", "watch"))


@resource_rule(
    "K8S-025",
    "Roles use no wildcards",
    "high",
    ALWAYS,
    ROLES,
    "List the verbs, API groups and resources the role needs; never `*`.",
    ["CIS-K8S-1.8.0:5.1.3"],
    description="A wildcard grants every verb, group or resource that exists, including the "
    "ones added later (custom resources, subresources such as pods/exec), so the role grows "
    "with the cluster.",
)
def role_wildcards(r: Subject) -> Iterator[str]:
    for i, rule in enumerate(role_rules(r)):
        found = wildcards(rule)
        if found:
            yield f"rule {i} grants {', '.join(found)}"


@resource_rule(
    "K8S-026",
    "Roles grant no escalate, bind or impersonate",
    "high",
    ALWAYS,
    ROLES,
    "Remove the escalate, bind and impersonate verbs (and the wildcards that include them); "
    "where a controller must bind roles, list the roles in resourceNames.",
    ["CIS-K8S-1.8.0:5.1.8"],
)
def role_escalation(r: Subject) -> Iterator[str]:
    for i, rule in enumerate(role_rules(r)):
        verbs = escalations(rule)
        if verbs:
            yield f"rule {i} grants {', '.join(verbs)}"


@resource_rule(
    "K8S-027",
    "Roles avoid grants that amount to escalation",
    "medium",
    ADVISE,
    ROLES,
    "Narrow the rule with resourceNames, or move the access into a dedicated role bound only "
    "to the workload that needs it.",
    [
        "CIS-K8S-1.8.0:5.1.2",
        "CIS-K8S-1.8.0:5.1.4",
        "CIS-K8S-1.8.0:5.1.9",
        "CIS-K8S-1.8.0:5.1.10",
        "CIS-K8S-1.8.0:5.1.11",
        "CIS-K8S-1.8.0:5.1.12",
        "CIS-K8S-1.8.0:5.1.13",
    ],
    description="Reading Secrets, creating pods, exec, PersistentVolumes, nodes/proxy, token "
    "creation, CSR approval and webhook configuration each reach further than the role says "
    "(another service account's token, the node, every request). Operators need some of them, "
    "so the pack advises; the bindings that hand them out cluster-wide are K8S-S03.",
)
def role_powerful(r: Subject) -> Iterator[str]:
    for i, rule in enumerate(role_rules(r)):
        found = powerful(rule)
        if found:
            yield f"rule {i} {'; '.join(found)}"


# -- bindings -----------------------------------------------------------------------------------

ANONYMOUS = {
    ("User", "system:anonymous"): "every request without credentials",
    ("Group", "system:unauthenticated"): "every request without credentials",
    ("Group", "system:authenticated"): "every identity the cluster authenticates, "
    "on GKE any Google account",
}
PUBLIC_DEFAULTS = ("system:public-info-viewer", "system:discovery", "system:basic-user")
"""The ClusterRoles Kubernetes itself binds to these groups (version, health, discovery, self
review): binding them again adds nothing."""
ADMIN_ROLES = ("cluster-admin", "admin", "edit")
"""The built-in ClusterRoles that read Secrets and run pods as any service account (admin and
edit in a namespace, cluster-admin everywhere)."""


@dataclass(frozen=True)
class Binding:
    kind: str
    namespace: str | None
    role_kind: str
    role: str
    subjects: tuple[tuple[str, str, str | None], ...]
    """(kind, name, namespace) per subject."""

    @property
    def cluster_wide(self) -> bool:
        return self.kind.startswith("ClusterRoleBinding")

    def scope(self) -> str:
        return "across the cluster" if self.cluster_wide else f"in namespace {self.namespace}"


def binding(r: Subject) -> Binding:
    meta = r.get("metadata") or {}
    ref = r.get("roleRef") or {}
    subjects = []
    for s in as_list(r.get("subjects")):
        if s == UNKNOWN:
            raise Unknowable("subjects")
        if isinstance(s, Mapping):
            kind, name = s.get("kind"), s.get("name")
            if UNKNOWN in (kind, name):
                raise Unknowable("subjects")
            subjects.append((str(kind), str(name), s.get("namespace")))
    if UNKNOWN in (ref.get("kind"), ref.get("name")):
        raise Unknowable("roleRef")
    return Binding(
        r.type.rsplit(":", 1)[-1],
        meta.get("namespace"),
        str(ref.get("kind", "")),
        str(ref.get("name", "")),
        tuple(subjects),
    )


def described(subject: tuple[str, str, str | None]) -> str:
    kind, name, namespace = subject
    return f"{kind} {namespace}/{name}" if kind == "ServiceAccount" else f"{kind} {name}"


def machine_or_group(subject: tuple[str, str, str | None]) -> bool:
    """A service account (by kind, or as the user it authenticates as) or a group."""
    kind, name, _ = subject
    return kind in ("ServiceAccount", "Group") or name.startswith("system:serviceaccount:")


@resource_rule(
    "K8S-028",
    "Bindings grant nothing to anonymous or all authenticated users",
    "critical",
    ALWAYS,
    BINDINGS,
    "Bind the role to named users, groups of your identity provider, or service accounts; "
    "never to system:anonymous, system:unauthenticated or system:authenticated.",
    description="system:anonymous and system:unauthenticated are every request that carries no "
    "credentials; system:authenticated is every identity the API server accepts, which on GKE "
    "includes any Google account. Only the discovery roles Kubernetes binds itself are exempt.",
)
def anonymous_bindings(r: Subject) -> Iterator[str]:
    b = binding(r)
    if b.role_kind == "ClusterRole" and b.role in PUBLIC_DEFAULTS:
        return
    for kind, name, _ in b.subjects:
        who = ANONYMOUS.get((kind, name))
        if who:
            yield f"grants {b.role_kind} {b.role} {b.scope()} to {name} ({who})"


@resource_rule(
    "K8S-029",
    "Service accounts and groups are not bound to cluster-admin, admin or edit",
    "high",
    ALWAYS,
    BINDINGS,
    "Give the workload or team a role listing what it needs; keep cluster-admin to the "
    "cluster's break-glass identities (named users), never a service account or a group.",
    ["CIS-K8S-1.8.0:5.1.1"],
    description="cluster-admin is everything everywhere; admin and edit read every Secret of "
    "their namespace and run pods as any of its service accounts. Bound to a service account, "
    "whoever controls that workload holds them; bound to a group, whoever joins it.",
)
def admin_bindings(r: Subject) -> Iterator[str]:
    b = binding(r)
    if b.role_kind != "ClusterRole" or b.role not in ADMIN_ROLES:
        return
    for subject in b.subjects:
        if machine_or_group(subject):
            yield f"binds {b.role} {b.scope()} to {described(subject)}"


@stack_rule(
    "K8S-S03",
    "Bindings hand no escalating role to service accounts or groups",
    "high",
    ALWAYS,
    [*ROLES, *BINDINGS],
    "Bind service accounts and groups only to roles without wildcards or escalate, bind and "
    "impersonate; grant Secrets reads in the namespace that holds them (a RoleBinding), never "
    "through a ClusterRoleBinding.",
    ["CIS-K8S-1.8.0:5.1.2", "CIS-K8S-1.8.0:5.1.3", "CIS-K8S-1.8.0:5.1.8"],
    description="Judges each binding by the role it references, when the stack declares that "
    "role: a role with wildcards or escalating verbs, or a ClusterRole that reads Secrets bound "
    "cluster-wide (every Secret, every namespace), given to a service account or a group.",
)
def escalating_bindings(stack: StackSubject) -> Iterator[tuple[str, str]]:
    roles: dict[tuple[str, str | None, str], list[PolicyRule]] = {}
    for r in stack.of_type(ROLE, CLUSTER_ROLE):
        meta = r.props.get("metadata") or {}
        name = meta.get("name")
        if not isinstance(name, str) or name == UNKNOWN:
            continue  # auto-named: a binding cannot name it before it exists
        kind = r.type.rsplit(":", 1)[-1]
        try:
            roles[(kind, meta.get("namespace") if kind == "Role" else None, name)] = role_rules(r)
        except Unknowable:
            continue
    for r in stack.of_type(ROLE_BINDING, CLUSTER_ROLE_BINDING):
        try:
            b = binding(r)
        except Unknowable:
            continue
        key = (b.role_kind, b.namespace if b.role_kind == "Role" else None, b.role)
        rules = roles.get(key)
        if rules is None:
            continue
        why = sorted(
            {w for rule in rules for w in wildcards(rule)}
            | {v for rule in rules for v in escalations(rule)}
            | ({"reads Secrets"} if b.cluster_wide and any(map(_reads_secrets, rules)) else set())
        )
        for subject in b.subjects:
            if why and machine_or_group(subject):
                yield (
                    r.urn,
                    f"binds {b.role_kind} {b.role} ({', '.join(why)}) {b.scope()} "
                    f"to {described(subject)}",
                )
