"""Day-0 readiness: the API becomes ready on a stack that has no data and no model yet."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from contracts.deployment import Plan
from toolchain.first_deploy.model import Finding
from toolchain.first_deploy.objects import containers, k8s_objects, meta, pod_spec

DAY0_READY_CHECKS = frozenset({"serving"})
"""The API's readiness checks that pass on a stack with no model yet
(tests/integration/test_api.py runs the real app on an empty registry to hold this true)."""


def cold_start(plan: Plan) -> list[Finding]:
    """On a new stack there is no gold data and no model: a Deployment the provider awaits
    must become ready anyway, or the first `up` fails."""
    findings: list[Finding] = []
    for res, obj in k8s_objects(plan):
        if obj.get("kind") != "Deployment" or meta(obj) != ("apps", "api"):
            continue
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if annotations.get("pulumi.com/skipAwait") == "true":
            continue
        for container in containers(pod_spec(obj) or {}):
            probe = (container.get("readinessProbe") or {}).get("httpGet") or {}
            path = str(probe.get("path", ""))
            query = parse_qs(urlsplit(path).query)
            checks = set(",".join(query.get("only", [])).split(",")) - {""}
            if not checks or not checks <= DAY0_READY_CHECKS:
                findings.append(
                    Finding(
                        "cold-start", res.urn,
                        f"readiness {path!r} needs {sorted(checks) or 'every check'}; on day 0 "
                        f"only {sorted(DAY0_READY_CHECKS)} can pass (no model yet): the update "
                        "times out",
                    )
                )  # fmt: skip
    return findings
