"""TLS trust: every client that verifies a server has the server's CA in its container.

Postgres clients with `sslmode=verify-*` and cache clients whose server CA is private have
that CA in their container, from a ConfigMap the plan creates with a `ca.crt`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from contracts.deployment import Plan
from toolchain.first_deploy.model import RELEASE, Finding
from toolchain.first_deploy.objects import (
    component_output,
    containers,
    k8s_objects,
    meta,
    pod_spec,
)


def _mount_dirs(
    pod: Mapping[str, Any], container: Mapping[str, Any], config_maps: set[str]
) -> list[str]:
    """Mount paths of `container` backed by a ConfigMap or Secret (a CA bundle can live there)."""
    volumes = {
        v.get("name"): v
        for v in pod.get("volumes") or []
        if ("configMap" in v and (v["configMap"].get("name") in config_maps)) or "secret" in v
    }
    return [
        str(m.get("mountPath"))
        for m in container.get("volumeMounts") or []
        if m.get("name") in volumes
    ]


def _covered(path: str, dirs: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def _ca_bundles(plan: Plan) -> dict[str, set[str]]:
    """namespace -> the ConfigMaps the plan creates there with a `ca.crt`."""
    bundles: dict[str, set[str]] = {}
    for _res, obj in k8s_objects(plan):
        if obj.get("kind") == "ConfigMap" and "ca.crt" in (obj.get("data") or {}):
            ns, name = meta(obj)
            bundles.setdefault(ns, set()).add(name)
    return bundles


def _unverified_database(sslmode: Any) -> list[Finding]:
    if isinstance(sslmode, str) and sslmode not in ("verify-full", "verify-ca"):
        return [
            Finding(
                "tls",
                "database",
                f"clients connect with sslmode={sslmode}: the server is not verified",
            )
        ]
    return []


def _container_trust(
    urn: str, container: Mapping[str, Any], dirs: list[str], cache_needs_ca: bool
) -> list[Finding]:
    """One container's Postgres (PGSSLMODE, a URL's sslrootcert) and cache CAs, against the
    CA bundles mounted at `dirs`."""
    findings: list[Finding] = []
    env = {e.get("name"): e.get("value") for e in container.get("env") or []}
    mode = env.get("PGSSLMODE")
    if isinstance(mode, str) and mode.startswith("verify"):
        root = env.get("PGSSLROOTCERT")
        if not isinstance(root, str) or not _covered(root, dirs):
            findings.append(
                Finding(
                    "tls", urn,
                    f"container {container.get('name')} verifies Postgres "
                    f"(sslmode={mode}) but its CA ({root or 'PGSSLROOTCERT unset'}) is "
                    "not mounted from a CA bundle: libpq refuses to connect",
                )
            )  # fmt: skip
    for value in env.values():
        if isinstance(value, str) and "sslmode=verify" in value:
            roots = parse_qs(urlsplit(value).query).get("sslrootcert", [])
            if not roots or not _covered(roots[0], dirs):
                findings.append(
                    Finding(
                        "tls",
                        urn,
                        "a Postgres URL verifies the server without a mounted sslrootcert",
                    )
                )
    is_cache_client = any(e.get("name") == "DEX_API_REDIS_URL" for e in container.get("env") or [])
    if is_cache_client and cache_needs_ca:
        ca_file = env.get("DEX_API_REDIS_CA_FILE")
        if not isinstance(ca_file, str) or not _covered(ca_file, dirs):
            findings.append(
                Finding(
                    "tls", urn,
                    "the cache presents a private CA but the API has no "
                    "DEX_API_REDIS_CA_FILE mounted from a CA bundle",
                )
            )  # fmt: skip
    return findings


def _workload_trust(plan: Plan, bundles: Mapping[str, set[str]]) -> list[Finding]:
    """Every container of every pod the plan declares."""
    cache_ca = component_output(plan, ":Cache", "ca_certificate")
    cache_needs_ca = cache_ca is not None and cache_ca != ""
    findings: list[Finding] = []
    for res, obj in k8s_objects(plan):
        pod = pod_spec(obj)
        if pod is None:
            continue
        ns = meta(obj)[0]
        for container in containers(pod):
            dirs = _mount_dirs(pod, container, bundles.get(ns, set()))
            findings += _container_trust(res.urn, container, dirs, cache_needs_ca)
    return findings


def _release_trust(plan: Plan, bundles: Mapping[str, set[str]], sslmode: Any) -> list[Finding]:
    """The charts that connect to Postgres themselves (MLflow, Airflow): their CA mounts,
    read from their values."""
    findings: list[Finding] = []
    for res in plan.of_type(RELEASE):
        chart = str(res.inputs.get("chart", ""))
        values = res.inputs.get("values") or {}
        ns = str(res.inputs.get("namespace", ""))
        if chart == "mlflow":
            env = values.get("extraEnvVars") or {}
            pod = {"volumes": values.get("extraVolumes") or []}
            container = {"volumeMounts": values.get("extraVolumeMounts") or []}
        elif chart == "airflow":
            env = {"PGSSLMODE": sslmode, "PGSSLROOTCERT": _airflow_root(values)}
            pod = {"volumes": values.get("volumes") or []}
            container = {"volumeMounts": values.get("volumeMounts") or []}
        else:
            continue
        mode = env.get("PGSSLMODE")
        root = env.get("PGSSLROOTCERT")
        dirs = _mount_dirs(pod, container, bundles.get(ns, set()))
        if (
            isinstance(mode, str)
            and mode.startswith("verify")
            and (not isinstance(root, str) or not _covered(root, dirs))
        ):
            findings.append(
                Finding(
                    "tls", res.urn,
                    f"{chart} verifies Postgres (sslmode={mode}) but no CA bundle from the plan "
                    f"is mounted at {root or '(no sslrootcert)'}",
                )
            )  # fmt: skip
    return findings


def _airflow_root(values: Mapping[str, Any]) -> str | None:
    """Where Airflow's metadata connection finds its CA: the connection itself is a secret,
    so the plan shows only the mount; the file name is the platform's contract."""
    from components.k8s.base import POSTGRES_CA_FILE

    return POSTGRES_CA_FILE if values.get("volumeMounts") else None


def tls_trust(plan: Plan) -> list[Finding]:
    """Postgres clients with `sslmode=verify-*` and cache clients whose server CA is private
    have that CA in their container, from a ConfigMap the plan creates with a `ca.crt`."""
    sslmode = component_output(plan, ":Database", "sslmode")
    bundles = _ca_bundles(plan)
    return [
        *_unverified_database(sslmode),
        *_workload_trust(plan, bundles),
        *_release_trust(plan, bundles, sslmode),
    ]
