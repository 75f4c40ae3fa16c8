"""Helm releases: what the pack can judge of the pods a chart renders at deploy time.

A `kubernetes:helm.sh/v3:Release` carries the chart, its version and the `values` we pass;
Helm renders the chart's templates when the release is applied, so the pod rules
(`rules_k8s`, `rules_k8s_pods`) never see those pods, and Checkov does not render them either.
These rules read what the values DO say, under the keys charts conventionally use for it
(`securityContext`, `podSecurityContext`, `containerSecurityContext`, Airflow's
`securityContexts`, a pod spec passed whole as ARC's `template` is, `hostNetwork`, `image`,
`resources`, ...) at any depth, since subcharts and components nest them
(`controller.securityContext`, `webhook.podSecurityContext`), and flag an insecure value set
explicitly. A block switched off with `enabled: false` is not rendered, so it is not read.

A setting the values leave out is the chart's default: it cannot be judged from here, so it is
neither flagged nor passed silently. The rule raises `ChartDefault`, which the runner counts
with the deferred checks (`Report.unknown`, "checks deferred") for that release.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from policies.model import (
    ADVISE,
    ALWAYS,
    RULES,
    UNKNOWN,
    Subject,
    Unknowable,
    as_list,
    is_secret,
    resource_rule,
)
from policies.rules_k8s import capability
from policies.rules_k8s_pods import HELM_RELEASE


class ChartDefault(Unknowable):
    """The values leave a setting to the chart (or to value files the plan does not carry):
    only the pods Helm renders at deploy time say what it is. Counted, like a value known only
    after apply, with the deferred checks."""


@dataclass(frozen=True)
class Setting:
    """One key of a release's values, where it is."""

    path: str
    """`.controller.securityContext.privileged`, `.template.spec.containers[0].image`."""
    key: str
    value: Any
    parent: Mapping[str, Any]
    """The mapping that holds the key (an image map's `tag` beside its `repository`)."""
    within: tuple[str, ...]
    """The keys above it, outermost first (list positions left out)."""


def _off(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() == "false")


def _on(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def settings(values: Any, path: str = "", within: tuple[str, ...] = ()) -> Iterator[Setting]:
    """Every key of the values tree, depth first. A mapping with `enabled: false` (a component,
    a subchart, a Bitnami-style `containerSecurityContext`) is not rendered: it is skipped. A
    Pulumi secret is a leaf."""
    if isinstance(values, Mapping):
        if is_secret(values) or _off(values.get("enabled")):
            return
        for key, child in values.items():
            here = f"{path}.{key}"
            yield Setting(here, str(key), child, values, within)
            yield from settings(child, here, (*within, str(key)))
    elif isinstance(values, list):
        for i, child in enumerate(values):
            yield from settings(child, f"{path}[{i}]", within)


OK = ""
"""A verdict: the values set what the rule reads, and it is secure."""
Verdict = str | None
"""What a rule says of one setting: None when it is not one the rule reads, OK, or the
problem (said of the value's path)."""
CONTEXTS = ("securityContext", "podSecurityContext", "containerSecurityContext", "securityContexts")
"""Keys holding a security context (Airflow's `securityContexts` holds `pod` and `containers`
ones): an unknown one hides every setting inside it."""


def _in_context(*keys: str) -> frozenset[str]:
    return frozenset({*keys, *CONTEXTS})


def judge(
    r: Subject, verdict: Callable[[Setting], Verdict], hides: frozenset[str], what: str
) -> Iterator[str]:
    """The problems `verdict` finds in the release's values. With none, the check is counted
    rather than passed when the values say nothing of `what` (the chart decides), when a value
    under a key of `hides` is known only after apply, or when value files the plan does not
    carry may override it. Everything is decided before the first message is yielded: the
    runner and the CrossGuard adapter then agree on a release with both."""
    problems: list[str] = []
    said = deferred = False
    for s in settings(r.get("values") or {}):
        if s.value == UNKNOWN:
            deferred = deferred or s.key in hides
            continue
        found = verdict(s)
        if found is not None:
            said = True
            if found:
                problems.append(f"values {s.path} {found}")
    if problems:
        yield from problems
        return
    if deferred:
        raise Unknowable(f"values that set {what} are known only after apply")
    if not said:
        raise ChartDefault(f"the values set no {what}: the chart's defaults decide")
    if r.get("valueYamlFiles"):
        raise ChartDefault(f"value files the plan does not carry may set {what}")


def _scalar(s: Setting, key: str) -> bool:
    return s.key == key and not isinstance(s.value, (Mapping, list))


def _controls(rule_id: str) -> tuple[str, ...]:
    """The benchmark controls of the pod rule a Helm rule reads the values for: the same
    control, judged on the other side of the chart."""
    return next(rule.frameworks for rule in RULES if rule.id == rule_id)


# -- the chart ------------------------------------------------------------------------------------

EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
"""A full semantic version. Helm reads `version` as a constraint (Masterminds semver):
`^1.2`, `~1.2`, `>=1`, `1.x`, `*`, and even `1.2` (the latest 1.2.z) are ranges."""


def _pinned_by_reference(chart: str) -> bool:
    """A chart whose reference fixes its content: a local path (the chart is in the
    repository), a packaged `.tgz` (a file or a URL naming one version), an OCI digest."""
    return (
        chart.startswith(("./", "../", "/", "file://"))
        or chart.endswith(".tgz")
        or ("@sha256:" in chart)
    )


@resource_rule(
    "HELM-001",
    "Helm releases pin their chart version",
    "medium",
    ADVISE,
    (HELM_RELEASE,),
    "Set the release's `version` to the exact chart version the values were written for "
    "(`1.21.0`, not `^1.21` or `1.21`), and bump it in a reviewed change.",
    description="Without `version`, Helm installs the newest chart it finds at each deploy "
    "(and a constraint such as `^1.2` or `1.2` the newest that matches): a preview and the "
    "apply after it, or two stacks, may render different templates, with defaults the values "
    "were not written for and this pack never saw. A local chart path, a packaged `.tgz` and "
    "an OCI reference by digest fix the chart by themselves.",
)
def chart_version(r: Subject) -> Iterator[str]:
    chart = str(r.get("chart") or "")
    if _pinned_by_reference(chart):
        return
    version = r.get("version")
    if version in (None, ""):
        yield f"chart {chart} has no version: Helm installs the newest one at each deploy"
    elif not EXACT_VERSION.match(str(version).strip()):
        yield (
            f"chart {chart} version {version!r} is a range: Helm installs the newest one "
            "that matches at each deploy"
        )


# -- privilege and the host's namespaces (mandatory, like their pod rules) ------------------------


def _flag(key: str, insecure: Callable[[Any], bool], problem: str) -> Callable[[Setting], Verdict]:
    """The verdict on one boolean key: `problem` when its value is the insecure one."""

    def verdict(s: Setting) -> Verdict:
        if not _scalar(s, key):
            return None
        return problem if insecure(s.value) else OK

    return verdict


_privileged = _flag(
    "privileged", _on, "is true: the container gets every capability and the host's devices"
)


@resource_rule(
    "HELM-002",
    "Helm values make no container privileged",
    "critical",
    ALWAYS,
    (HELM_RELEASE,),
    "Remove `privileged: true` from the release's values (or set it false).",
    _controls("K8S-003"),
    description="K8S-003 read from the values a chart renders pods from: `privileged: true` "
    "at any depth (a `securityContext`, `containerSecurityContext`, a component's or a "
    "subchart's) gives a container every capability and the node's devices, which is root on "
    "the node. Values that set no `privileged` are counted, not judged: the chart decides.",
)
def privileged(r: Subject) -> Iterator[str]:
    return judge(r, _privileged, _in_context("privileged"), "privileged flag")


HOST_NAMESPACES = {
    "hostNetwork": "shares the node's network namespace",
    "hostPID": "shares the node's process namespace",
    "hostIPC": "shares the node's IPC namespace",
    "hostProcess": "runs as a Windows HostProcess, in the host's own namespaces",
}


def _host_namespace(s: Setting) -> Verdict:
    if s.key not in HOST_NAMESPACES or isinstance(s.value, (Mapping, list)):
        return None
    return f"is true: the pod {HOST_NAMESPACES[s.key]}" if _on(s.value) else OK


@resource_rule(
    "HELM-003",
    "Helm values share no host namespace",
    "critical",
    ALWAYS,
    (HELM_RELEASE,),
    "Remove `hostNetwork`, `hostPID`, `hostIPC` and `windowsOptions.hostProcess` true from "
    "the release's values.",
    _controls("K8S-009"),
    description="K8S-009 read from the values: `hostNetwork`, `hostPID`, `hostIPC` or "
    "`hostProcess` true at any depth puts the chart's pod in the node's namespaces (its "
    "network stack and every port, every process, its shared memory). Values that set none "
    "of them are counted, not judged: the chart decides.",
)
def host_namespaces(r: Subject) -> Iterator[str]:
    return judge(r, _host_namespace, _in_context(*HOST_NAMESPACES), "host namespace")


_escalation = _flag(
    "allowPrivilegeEscalation",
    _on,
    "is true: a setuid binary can gain more privileges than its parent",
)


@resource_rule(
    "HELM-004",
    "Helm values let no container escalate privileges",
    "high",
    ALWAYS,
    (HELM_RELEASE,),
    "Set `allowPrivilegeEscalation: false` in the release's values (the chart's "
    "`securityContext`/`containerSecurityContext`).",
    _controls("K8S-002"),
    description="K8S-002 read from the values: `allowPrivilegeEscalation: true` at any depth "
    "lets a process gain more privileges than its parent (setuid binaries, no_new_privs "
    "off). Values that set no `allowPrivilegeEscalation` are counted, not judged.",
)
def escalation(r: Subject) -> Iterator[str]:
    return judge(r, _escalation, _in_context("allowPrivilegeEscalation"), "privilege escalation")


def _capabilities(s: Setting) -> Verdict:
    if s.key != "capabilities" or not isinstance(s.value, Mapping):
        return None
    added = {capability(a) for a in as_list(s.value.get("add"))} - {"NET_BIND_SERVICE"}
    return f"adds {', '.join(sorted(added))}" if added else OK


@resource_rule(
    "HELM-005",
    "Helm values add no capabilities beyond NET_BIND_SERVICE",
    "high",
    ALWAYS,
    (HELM_RELEASE,),
    "Remove `capabilities.add` from the release's values (NET_BIND_SERVICE aside).",
    _controls("K8S-006"),
    description="K8S-006 read from the values: `capabilities.add` at any depth hands a "
    "container kernel privileges (SYS_ADMIN, NET_ADMIN, SYS_PTRACE are most of the way to "
    "privileged); a privilege like `privileged` itself, so mandatory like HELM-002. Values "
    "with no `capabilities` are counted, not judged.",
)
def added_capabilities(r: Subject) -> Iterator[str]:
    return judge(r, _capabilities, _in_context("capabilities"), "capabilities")


# -- hardening (advisory: the values are read by key, not by what the chart does with them) -------


def _root(s: Setting) -> Verdict:
    if _scalar(s, "runAsNonRoot"):
        return "is false: the container may run as root" if _off(s.value) else OK
    if _scalar(s, "runAsUser"):
        zero = not isinstance(s.value, bool) and str(s.value).strip() in ("0", "0.0")
        return "is 0: the container runs as root" if zero else OK
    return None


@resource_rule(
    "HELM-006",
    "Helm values do not run containers as root",
    "medium",
    ADVISE,
    (HELM_RELEASE,),
    "Set `runAsNonRoot: true` and a non-zero `runAsUser` in the release's values, or leave "
    "them to a chart whose defaults do.",
    _controls("K8S-001"),
    description="K8S-001 read from the values: `runAsNonRoot: false` or `runAsUser: 0` at any "
    "depth runs the chart's container as root. Advisory: a values key is not proof of the "
    "rendered pod (a chart may apply it to one container of several). Values that set "
    "neither are counted, not judged.",
)
def root(r: Subject) -> Iterator[str]:
    return judge(r, _root, _in_context("runAsNonRoot", "runAsUser"), "runAsNonRoot/runAsUser")


def _seccomp(s: Setting) -> Verdict:
    if s.key != "seccompProfile" or not isinstance(s.value, Mapping):
        return None
    kind = str(s.value.get("type", ""))
    return (
        f"type is {kind}: the container runs without a syscall filter"
        if (kind.lower() == "unconfined")
        else OK
    )


@resource_rule(
    "HELM-007",
    "Helm values keep a seccomp profile",
    "medium",
    ADVISE,
    (HELM_RELEASE,),
    "Set `seccompProfile: {type: RuntimeDefault}` in the release's values.",
    _controls("K8S-013"),
    description="K8S-013 read from the values: `seccompProfile.type: Unconfined` at any depth "
    "turns off the runtime's syscall filter. Values with no `seccompProfile` are counted, not "
    "judged.",
)
def seccomp(r: Subject) -> Iterator[str]:
    return judge(r, _seccomp, _in_context("seccompProfile"), "seccomp profile")


_writable_root = _flag(
    "readOnlyRootFilesystem", _off, "is false: the container can write its image's filesystem"
)


@resource_rule(
    "HELM-008",
    "Helm values keep root filesystems read-only",
    "medium",
    ADVISE,
    (HELM_RELEASE,),
    "Set `readOnlyRootFilesystem: true` in the release's values and mount an emptyDir where "
    "the program writes.",
    _controls("K8S-004"),
    description="K8S-004 read from the values: `readOnlyRootFilesystem: false` at any depth "
    "lets a compromised process change the binaries and libraries it runs. Values that set "
    "none are counted, not judged.",
)
def writable_root(r: Subject) -> Iterator[str]:
    return judge(r, _writable_root, _in_context("readOnlyRootFilesystem"), "root filesystem mode")


# -- images and resources -------------------------------------------------------------------------

DIGEST_KEYS = ("digest", "sha")
"""Where charts take an image digest: `image.digest` (most), `image.sha` (Grafana, kps)."""
CHANGES = "so the same release runs whatever the tag points to at its next pull"


def _image_map(s: Setting) -> bool:
    """`image: {repository, tag, digest}`, one of `images: {airflow: {...}}`, or one nested in
    an `image` map (kube-prometheus-stack's `crds.upgradeJob.image.kubectl`)."""
    if not isinstance(s.value, Mapping) or not {"tag", *DIGEST_KEYS} & set(s.value):
        return False
    return any(k.lower().endswith(("image", "images")) for k in (*s.within, s.key))


def _tag_verdict(tag: Any, digest: Any) -> Verdict:
    if UNKNOWN in (tag, digest):
        return None  # a build's tag or digest: counted with the deferred checks
    text = "" if tag is None else str(tag).strip()
    if (isinstance(digest, str) and digest.strip()) or "@sha256:" in text:
        return OK
    if text.lower() in ("", "latest"):
        return f"tag is {text or 'empty'} and no digest, {CHANGES}"
    return OK


def _image(s: Setting) -> Verdict:
    if _image_map(s):
        if "tag" not in s.value and not any(s.value.get(k) for k in DIGEST_KEYS):
            return None  # only a repository: the chart's tag (its appVersion) applies
        digest = next((s.value[k] for k in DIGEST_KEYS if s.value.get(k)), None)
        return _tag_verdict(s.value.get("tag"), digest)
    if s.key != "image" or not isinstance(s.value, str) or not s.value.strip():
        return None
    if {"tag", *DIGEST_KEYS} & set(s.parent):
        return None  # a repository beside its tag (ingress-nginx's `image.image`)
    ref = s.value.strip()
    name = ref.rsplit("/", 1)[-1]  # a registry's port is not a tag: `host:5000/app`
    tag = name.split(":", 1)[1] if ":" in name else ""
    if "@sha256:" in ref or tag.lower() not in ("", "latest"):
        return OK
    return f"is {ref}: {f'tag {tag}' if tag else 'no tag'} and no digest, {CHANGES}"


@resource_rule(
    "HELM-009",
    "Helm values pin the images they name",
    "medium",
    ADVISE,
    (HELM_RELEASE,),
    "Give every image the values name an explicit version tag, better a digest "
    "(`image.digest` / `image.sha`, or `repo@sha256:...`); never `latest` or an empty tag.",
    description="Where the values name an image (an `image` or `images` map, or an `image` "
    "string in a pod spec passed whole), a `latest`, empty or missing tag with no digest lets "
    "the same release run different code at its next pull, unreviewed. An image map with only "
    "a repository leaves the tag to the chart; values that name no image are counted, not "
    "judged. A tag or digest known only after a build is deferred, as in K8S-011.",
)
def image_tags(r: Subject) -> Iterator[str]:
    return judge(r, _image, frozenset({"image", "images", "tag", *DIGEST_KEYS}), "image")


def _volume_claim(s: Setting) -> bool:
    """`resources` of a PersistentVolumeClaim (a `storage` request), not of a container."""
    sizes = [s.value.get("requests"), s.value.get("limits")]
    if any(isinstance(m, Mapping) and "storage" in m for m in sizes):
        return True
    return any(
        k.lower().startswith(("persistence", "storage")) or "volumeclaim" in k.lower()
        for k in s.within
    )


def _limits(s: Setting) -> Verdict:
    if s.key != "resources" or not isinstance(s.value, Mapping) or _volume_claim(s):
        return None
    limits = s.value.get("limits")
    limits = limits if isinstance(limits, Mapping) else {}
    missing = [k for k in ("cpu", "memory") if k not in limits]
    return f"sets no {' or '.join(missing)} limit" if missing else OK


@resource_rule(
    "HELM-010",
    "Helm values that set resources set CPU and memory limits",
    "medium",
    ADVISE,
    (HELM_RELEASE,),
    "Where the values set `resources`, give them `limits.cpu` and `limits.memory` (and requests).",
    description="K8S-007 read from the values: a `resources` block given without CPU and "
    "memory limits (including `resources: {}`, which drops the chart's own) lets one pod "
    "starve its node. Volume claims' `resources` (a `storage` request, under `persistence` or "
    "a `volumeClaimTemplate`) are not a container's. Values that set no container resources "
    "are counted, not judged.",
)
def limits(r: Subject) -> Iterator[str]:
    return judge(r, _limits, frozenset({"resources", "limits"}), "container resources")
