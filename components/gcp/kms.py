"""A customer-managed Cloud KMS key for one Google service's data at rest (CMEK): its own key
ring and key in the resource's region, and the grant that lets the service's agent use it.

Order on a first deploy: the service agent exists (`projects.ServiceIdentity`, "Per-product,
per-project service account not found" otherwise), then holds
`roles/cloudkms.cryptoKeyEncrypterDecrypter` on the key, and only then is the encrypted
resource created: it must wait for `ServiceKey.grant`. A service checks the key when the
resource is created and the key cannot be changed afterwards (Cloud SQL `encryption_key_name`,
Memorystore `customer_managed_key`, Artifact Registry `kms_key_name`).

IAM is eventually consistent, and the provider does not retry either step: a grant to an agent
IAM does not know yet fails ("Service account ... does not exist" is deliberately not retried,
terraform-provider-google `tpgiamresource/iam.go` and `error_retry_predicates.go`), and so does a
resource created before its grant propagates. Google's own Memorystore CMEK example waits 30 s
after `google_project_service_identity`. So: agent -> wait -> grant -> wait -> resource, each
wait a `command` `sleep` run where `pulumi up` runs (on create only; a preview runs nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_gcp as gcp

ROTATION_PERIOD = "7776000s"
"""90 days (GCP-KMS-001)."""
ENCRYPTER_DECRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
PROPAGATION_SECONDS = 60
"""How long each wait gives IAM to propagate a new agent or grant (Google's example: 30 s)."""

SERVICE_AGENTS = {
    "sqladmin.googleapis.com": "gcp-sa-cloud-sql",
    "redis.googleapis.com": "cloud-redis",
    "artifactregistry.googleapis.com": "gcp-sa-artifactregistry",
}
"""Each service's agent domain: `service-PROJECT_NUMBER@<domain>.iam.gserviceaccount.com`
(Cloud SQL, Memorystore for Redis and Artifact Registry CMEK guides)."""


def service_agent(service: str, project_number: str) -> str:
    """The IAM member of a service's Google-managed agent in a project."""
    domain = SERVICE_AGENTS[service]
    return f"serviceAccount:service-{project_number}@{domain}.iam.gserviceaccount.com"


def validate_cmek(
    cmek: bool, project_number: str, command_provider: pulumi.ProviderResource | None
) -> None:
    """A customer-managed key needs the project number (the service agent's address) and a
    `command` provider (the propagation waits)."""
    if cmek and not project_number.isdigit():
        raise ValueError(f"`cmek` needs the numeric `project_number`, got {project_number!r}")
    if cmek and command_provider is None:
        raise ValueError("`cmek` needs `command_provider` for the IAM propagation waits")


@dataclass(frozen=True, kw_only=True)
class ServiceKeyArgs:
    project: str
    project_number: str
    """The project's number: the agent's address is derived from it."""
    region: str
    """Where the key lives: the encrypted resource's region (a must for all three services)."""
    service: str
    """A `SERVICE_AGENTS` API, e.g. `sqladmin.googleapis.com`."""
    ring_name: str
    """The key ring's name; key rings are permanent in a project (see docs/config.md)."""
    key_name: str
    labels: dict[str, str]
    protect: bool
    """Protect the ring and key like the stack's other stateful resources."""
    command_provider: pulumi.ProviderResource | None
    """The explicit `command` provider that runs the propagation waits (`validate_cmek`
    refuses a key without one)."""


@dataclass(frozen=True)
class ServiceKey:
    key_id: pulumi.Output[str]
    ready: pulumi.Resource
    """What the encrypted resource must wait for: the grant, given time to propagate."""


def service_key(name: str, args: ServiceKeyArgs, parent: pulumi.Resource) -> ServiceKey:
    """Key ring, key, the service agent and its grant, children of `parent` named `name-*`."""
    child = pulumi.ResourceOptions(parent=parent)
    agent = gcp.projects.ServiceIdentity(
        f"{name}-agent", project=args.project, service=args.service, opts=child
    )
    ring = gcp.kms.KeyRing(
        f"{name}-keyring",
        name=args.ring_name,
        location=args.region,
        project=args.project,
        opts=pulumi.ResourceOptions(parent=parent, protect=args.protect),
    )
    key = gcp.kms.CryptoKey(
        f"{name}-key",
        name=args.key_name,
        key_ring=ring.id,
        rotation_period=ROTATION_PERIOD,
        purpose="ENCRYPT_DECRYPT",
        labels=args.labels,
        opts=pulumi.ResourceOptions(parent=parent, protect=args.protect),
    )
    agent_known = _wait(f"{name}-agent-propagated", agent, args, parent)
    grant = gcp.kms.CryptoKeyIAMMember(
        f"{name}-key-agent",
        crypto_key_id=key.id,
        role=ENCRYPTER_DECRYPTER,
        member=service_agent(args.service, args.project_number),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[agent_known]),
    )
    return ServiceKey(key_id=key.id, ready=_wait(f"{name}-grant-propagated", grant, args, parent))


def _wait(
    name: str, after: pulumi.Resource, args: ServiceKeyArgs, parent: pulumi.Resource
) -> command.local.Command:
    """`PROPAGATION_SECONDS` of waiting once `after` exists (on create only)."""
    return command.local.Command(
        name,
        create=f"sleep {PROPAGATION_SECONDS}",
        opts=pulumi.ResourceOptions(
            parent=parent, depends_on=[after], provider=args.command_provider
        ),
    )


def optional_key(
    cmek: bool, name: str, args: ServiceKeyArgs, parent: pulumi.Resource
) -> tuple[pulumi.Output[str] | None, list[pulumi.Resource]]:
    """With `cmek`: the key (`service_key`, named `name-cmek-*`) and what the encrypted
    resource must wait for; without: no key and nothing to wait for."""
    if not cmek:
        return None, []
    key = service_key(f"{name}-cmek", args, parent)
    return key.key_id, [key.ready]
