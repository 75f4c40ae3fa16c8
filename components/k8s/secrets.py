"""Secrets: the platform's own Secrets, and the sealed-secrets controller for the secrets a
team keeps in git.

The platform's own secrets (database passwords, the Redis URL, Airflow's keys, Grafana's
admin) are plain Kubernetes Secrets that the program writes: their values already live in
the stack's state, encrypted with the stack's secrets provider, and reach etcd only through
the Kubernetes API (EKS/GKE encrypt Secrets at rest with the cluster's KMS key). Sealing
them in the program added nothing but a dynamic provider, which a real engine refuses under
`pulumi:disable-default-providers: ["*"]` (the `pulumi-python` package is denied like any
other) and which starts from the plugin folder (`stacks/`, pulumi/pulumi#7061).

The sealed-secrets controller stays for what a team commits to git. Its key lifecycle (the
part users most often get wrong): the program generates the key (pulumi-tls, RSA 4096, a
10-year self-signed certificate) and installs it as the controller's active key *before* the
controller starts; automatic renewal is off. The private key therefore lives in the stack's
state and is backed up with it:

- rebuilt cluster: `pulumi up` installs the same key again, so every SealedSecret ever
  sealed for this stack (`kubeseal --cert <(pulumi stack output sealing_certificate)`)
  decrypts;
- rotation: `pulumi up --replace` the key (urn in docs/platform.md); SealedSecrets in git must be
  re-sealed with the new certificate;
- in prod the key is protected: deleting it needs an explicit unprotect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from components.k8s.base import MANAGED_BY, PLATFORM_NS, Chart, helm_release, untyped
from components.options import take_depends_on

SEALED_SECRETS_CHART = "sealed-secrets"
SEALED_SECRETS_VERSION = "2.18.5"
SEALED_SECRETS_REPO = "https://bitnami-labs.github.io/sealed-secrets"
CONTROLLER_NAME = "sealed-secrets-controller"
KEY_SECRET_NAME = "sealed-secrets-key"
KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"


def controller_values() -> dict[str, Any]:
    """The controller chart: the program's key only (no renewal), hardened, monitored."""
    return {
        "fullnameOverride": CONTROLLER_NAME,
        "secretName": KEY_SECRET_NAME,
        # no renewal: the only keys are the ones in the stack's state
        "keyrenewperiod": "0",
        "podSecurityContext": {
            "enabled": True,
            "fsGroup": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containerSecurityContext": {
            "enabled": True,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 1001,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"},
        },
        "metrics": {"serviceMonitor": {"enabled": True, "namespace": PLATFORM_NS}},
    }


@dataclass(frozen=True)
class SealedSecretsArgs:
    protect_key: bool
    """Protect the sealing key (prod): deleting it then needs an explicit unprotect."""


SEALED_SECRETS = Chart(
    release="sealed-secrets",
    chart=SEALED_SECRETS_CHART,
    version=SEALED_SECRETS_VERSION,
    repo=SEALED_SECRETS_REPO,
    namespace=PLATFORM_NS,
)


class SealedSecrets(pulumi.ComponentResource):
    """The controller with a program-managed key. `opts.depends_on` holds what its chart needs
    first (the ServiceMonitor CRD). Type token `dex:k8s:SealedSecrets`."""

    def __init__(
        self, name: str, args: SealedSecretsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        own, depends_on = take_depends_on(opts)
        super().__init__("dex:k8s:SealedSecrets", name, None, own)
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(
            f"{name}-key",
            algorithm="RSA",
            rsa_bits=4096,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect_key),
        )
        cert = tls.SelfSignedCert(
            f"{name}-cert",
            private_key_pem=key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(common_name="sealed-secret", organization="dex"),
            validity_period_hours=24 * 365 * 10,
            allowed_uses=["key_encipherment", "digital_signature"],
            opts=child,
        )
        self.certificate: pulumi.Output[str] = cert.cert_pem
        key_secret = k8s.core.v1.Secret(
            f"{name}-active-key",
            metadata=untyped(
                {
                    "name": KEY_SECRET_NAME,
                    "namespace": PLATFORM_NS,
                    "labels": {**MANAGED_BY, KEY_LABEL: "active"},
                }
            ),
            type="kubernetes.io/tls",
            string_data=untyped({"tls.crt": cert.cert_pem, "tls.key": key.private_key_pem}),
            opts=child,
        )
        self.controller = helm_release(
            f"{name}-controller",
            SEALED_SECRETS,
            controller_values(),
            pulumi.ResourceOptions(parent=self, depends_on=[key_secret, *depends_on]),
        )
        self.register_outputs({"certificate": self.certificate})


def platform_secret(
    name: str,
    namespace: str,
    secret_name: str,
    data: Mapping[str, pulumi.Input[str]],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Secret:
    """One of the platform's own Secrets, written by the program: every value is a Pulumi
    secret (encrypted in the state, masked in previews)."""
    return k8s.core.v1.Secret(
        name,
        metadata=untyped({"name": secret_name, "namespace": namespace, "labels": MANAGED_BY}),
        type="Opaque",
        string_data=pulumi.Output.secret(dict(data)),
        opts=opts,
    )
