"""The Secrets and ConfigMaps a pod mounts or reads, and those a chart's values name."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from toolchain.first_deploy.objects import containers


def pod_references(pod: Mapping[str, Any]) -> Iterator[tuple[str, str, bool]]:
    for volume in pod.get("volumes") or []:
        if "secret" in volume:
            ref = volume["secret"]
            yield "Secret", str(ref.get("secretName")), bool(ref.get("optional"))
        if "configMap" in volume:
            ref = volume["configMap"]
            yield "ConfigMap", str(ref.get("name")), bool(ref.get("optional"))
    for container in containers(pod):
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                if key in source:
                    yield kind, str(source[key].get("name")), bool(source[key].get("optional"))
        for env_from in container.get("envFrom") or []:
            for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                if key in env_from:
                    ref = env_from[key]
                    yield kind, str(ref.get("name")), bool(ref.get("optional"))


def value_references(values: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Secrets and ConfigMaps a chart's values name: `*SecretName` keys, `existing*Secret`
    blocks, `secretKeyRef`s and volumes."""
    if isinstance(values, Mapping):
        lowered = key.lower()
        names_secret = ("existing" in lowered and "secret" in lowered) or lowered in (
            "secretkeyref",
            "secretref",
        )
        if names_secret and isinstance(values.get("name"), str):
            yield "Secret", values["name"]
        if lowered == "configmap" and isinstance(values.get("name"), str):
            yield "ConfigMap", values["name"]
        if lowered == "secret" and isinstance(values.get("secretName"), str):
            yield "Secret", values["secretName"]
        for k, v in values.items():
            if isinstance(v, str) and k.lower().endswith("secretname"):
                yield "Secret", v
            else:
                yield from value_references(v, str(k))
    elif isinstance(values, list):
        for v in values:
            yield from value_references(v, key)
