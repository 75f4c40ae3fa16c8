"""GCP rules on who may reach a resource: IAM members, bindings and authoritative policies on
buckets, keys, repositories, service accounts and projects; bucket and object ACLs; consumer
and foreign identities; basic roles; long-lived credentials.

Each rule judges the resource the grant lives on (a `CryptoKeyIAMMember`, a `BucketACL`, a
`DefaultObjectAccessControl`), never only its parent. GCP-GCS-003 (bucket members and
bindings, `policies/rules_gcp_data.py`) and GCP-IAM-002/003 (project members and bindings,
`policies/rules_gcp.py`) keep their types; the rules here cover the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from policies.model import ADVISE, ALWAYS, Subject, Unknowable, as_list, decoded, resource_rule

PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
BASIC_ROLES = ("roles/owner", "roles/editor", "roles/viewer")
IMPERSONATION_ROLES = ("roles/iam.serviceAccountUser", "roles/iam.serviceAccountTokenCreator")
CONSUMER_DOMAINS = ("gmail.com", "googlemail.com", "googlegroups.com")
"""Consumer Google accounts and groups: outside any organisation's control (CIS GCP 1.1)."""


def _iam(prefix: str, *kinds: str) -> tuple[str, ...]:
    return tuple(f"gcp:{prefix}{kind}" for kind in kinds)


BUCKET_MEMBER_BINDING = _iam(
    "storage/bucketIAM", "Member:BucketIAMMember", "Binding:BucketIAMBinding"
)
BUCKET_POLICY = _iam("storage/bucketIAM", "Policy:BucketIAMPolicy")
MANAGED_FOLDER = _iam(
    "storage/managedFolderIam",
    "Member:ManagedFolderIamMember",
    "Binding:ManagedFolderIamBinding",
    "Policy:ManagedFolderIamPolicy",
)
KEY = _iam(
    "kms/cryptoKeyIAM",
    "Member:CryptoKeyIAMMember",
    "Binding:CryptoKeyIAMBinding",
    "Policy:CryptoKeyIAMPolicy",
)
KEY_RING = _iam(
    "kms/keyRingIAM",
    "Member:KeyRingIAMMember",
    "Binding:KeyRingIAMBinding",
    "Policy:KeyRingIAMPolicy",
)
REPOSITORY = _iam(
    "artifactregistry/repositoryIam",
    "Member:RepositoryIamMember",
    "Binding:RepositoryIamBinding",
    "Policy:RepositoryIamPolicy",
)
SERVICE_ACCOUNT = _iam(
    "serviceaccount/iAM", "Member:IAMMember", "Binding:IAMBinding", "Policy:IAMPolicy"
)
PROJECT_MEMBER_BINDING = _iam("projects/iAM", "Member:IAMMember", "Binding:IAMBinding")
PROJECT_POLICY = _iam("projects/iAM", "Policy:IAMPolicy")
FOLDER_ORG = (
    *_iam("folder/iAM", "Member:IAMMember", "Binding:IAMBinding", "Policy:IAMPolicy"),
    *_iam("organizations/iAM", "Member:IAMMember", "Binding:IAMBinding", "Policy:IAMPolicy"),
)
RESOURCE_IAM = (*BUCKET_POLICY, *MANAGED_FOLDER, *KEY, *KEY_RING, *REPOSITORY, *SERVICE_ACCOUNT)
"""IAM on single resources, except bucket members and bindings (GCP-GCS-003's)."""
ALL_IAM = (*BUCKET_MEMBER_BINDING, *RESOURCE_IAM, *PROJECT_MEMBER_BINDING, *PROJECT_POLICY)

BUCKET_ACL = "gcp:storage/bucketACL:BucketACL"
OBJECT_ACL = "gcp:storage/objectACL:ObjectACL"
BUCKET_ACCESS_CONTROL = "gcp:storage/bucketAccessControl:BucketAccessControl"
OBJECT_ACCESS_CONTROL = "gcp:storage/objectAccessControl:ObjectAccessControl"
DEFAULT_OBJECT_ACL = "gcp:storage/defaultObjectACL:DefaultObjectACL"
DEFAULT_OBJECT_ACCESS_CONTROL = "gcp:storage/defaultObjectAccessControl:DefaultObjectAccessControl"
PUBLIC_PREDEFINED_ACLS = ("publicRead", "publicReadWrite", "authenticatedRead")
"""Canned ACLs that hand a bucket or its objects to allUsers / allAuthenticatedUsers."""


def grants(r: Subject) -> list[tuple[str, str]]:
    """(role, member) pairs of an IAM member, binding or authoritative policy resource."""
    if r.type.endswith("Policy") and not r.type.endswith("AuditConfig"):
        policy = decoded(r.get("policyData"))
        if not isinstance(policy, Mapping):
            return []
        return [
            (str(b.get("role")), str(m))
            for b in as_list(policy.get("bindings"))
            if isinstance(b, Mapping)
            for m in as_list(b.get("members"))
        ]
    role = str(r.get("role", ""))
    return [(role, str(m)) for m in [r.get("member"), *as_list(r.get("members"))] if m]


def _project_of(r: Subject) -> str | None:
    """The project a granted resource lives in, when the inputs say so (else None)."""
    for key in ("project", "cryptoKeyId", "keyRingId", "serviceAccountId", "repository"):
        try:
            value = r.get(key)
        except Unknowable:
            continue
        if not isinstance(value, str) or not value:
            continue
        if key == "project":
            return value
        match = re.search(r"(?:^|/)projects/([^/]+)/", value)
        if match:
            return match.group(1)
    return None


_SA = re.compile(r"^serviceAccount:([^@]+)@([a-z0-9-]+)\.iam\.gserviceaccount\.com$")
_WORKLOAD = re.compile(r"^serviceAccount:([a-z0-9-]+)\.svc\.id\.goog\[")
_AGENT = re.compile(r"^(service-\d+|\d+)$")
"""Google-managed service agents (`service-NUMBER@gcp-sa-…`): the project's own, by number."""


def _foreign_project(member: str) -> str | None:
    """The project of a user-managed service account or Workload Identity member."""
    sa = _SA.match(member)
    if sa and not _AGENT.match(sa.group(1)):
        return sa.group(2)
    wi = _WORKLOAD.match(member)
    return wi.group(1) if wi else None


def _consumer(member: str) -> bool:
    kind, _, who = member.partition(":")
    domain = who.rpartition("@")[2] if kind in ("user", "group") else who
    return kind in ("user", "group", "domain") and domain.lower() in CONSUMER_DOMAINS


def _acl_entities(r: Subject, key: str = "roleEntities") -> list[str]:
    """The entities of `ROLE:entity` strings (BucketACL, ObjectACL, DefaultObjectACL)."""
    return [str(e).partition(":")[2] for e in as_list(r.get(key))]


# -- public grants --------------------------------------------------------------------------------


@resource_rule(
    "GCP-IAM-005",
    "No IAM grant to allUsers or allAuthenticatedUsers on keys, repositories, accounts, "
    "projects or bucket policies",
    "critical",
    ALWAYS,
    [*RESOURCE_IAM, *PROJECT_MEMBER_BINDING, *PROJECT_POLICY],
    "Grant named service accounts or groups; never allUsers / allAuthenticatedUsers.",
    ["CIS-GCP-2.0.0:1.9", "CIS-GCP-2.0.0:5.1"],
    "A KMS key, key ring, Artifact Registry repository, service account, project or bucket "
    "IAM policy granted to allUsers or allAuthenticatedUsers is open to the whole internet "
    "(any Google account is authenticated). Bucket members and bindings: GCP-GCS-003.",
)
def no_public_grants(r: Subject) -> Iterator[str]:
    for role, member in grants(r):
        if member in PUBLIC_MEMBERS:
            yield f"{member} granted {role}"


@resource_rule(
    "GCP-GCS-008",
    "Default object ACLs grant nothing to allUsers or allAuthenticatedUsers",
    "critical",
    ALWAYS,
    [DEFAULT_OBJECT_ACCESS_CONTROL, DEFAULT_OBJECT_ACL, BUCKET_ACL],
    "Remove the entity; keep uniform bucket-level access on (no object ACLs at all).",
    ["CIS-GCP-2.0.0:5.1"],
    "A default object ACL applies to every object written later: a public entry makes each "
    "new object public, whatever the bucket's IAM says.",
)
def gcs_default_acl(r: Subject) -> Iterator[str]:
    if r.type == DEFAULT_OBJECT_ACCESS_CONTROL:
        if r.get("entity") in PUBLIC_MEMBERS:
            yield f"new objects readable by {r.get('entity')} ({r.get('role')})"
        return
    if r.type == BUCKET_ACL:
        if r.get("defaultAcl") in PUBLIC_PREDEFINED_ACLS:
            yield f"defaultAcl {r.get('defaultAcl')} makes new objects public"
        return
    for entity in _acl_entities(r):
        if entity in PUBLIC_MEMBERS:
            yield f"new objects readable by {entity}"


@resource_rule(
    "GCP-GCS-009",
    "Bucket and object ACLs grant nothing to allUsers or allAuthenticatedUsers",
    "critical",
    ALWAYS,
    [BUCKET_ACL, OBJECT_ACL, BUCKET_ACCESS_CONTROL, OBJECT_ACCESS_CONTROL],
    "Remove the public entry or predefined ACL; grant IAM roles to named principals.",
    ["CIS-GCP-2.0.0:5.1"],
)
def gcs_acl(r: Subject) -> Iterator[str]:
    if r.type in (BUCKET_ACCESS_CONTROL, OBJECT_ACCESS_CONTROL):
        if r.get("entity") in PUBLIC_MEMBERS:
            yield f"{r.get('entity')} granted {r.get('role')}"
        return
    if r.get("predefinedAcl") in PUBLIC_PREDEFINED_ACLS:
        yield f"predefinedAcl {r.get('predefinedAcl')}"
    for entity in _acl_entities(r):
        if entity in PUBLIC_MEMBERS:
            yield f"{entity} in roleEntities"


# -- identities -----------------------------------------------------------------------------------


@resource_rule(
    "GCP-IAM-006",
    "IAM grants go to organisation identities, not consumer accounts",
    "high",
    ALWAYS,
    [*ALL_IAM, *FOLDER_ORG],
    "Grant groups or users of your Cloud Identity / Workspace domain, or service accounts.",
    ["CIS-GCP-2.0.0:1.1"],
    "A gmail.com user or googlegroups.com group is outside the organisation: no MFA policy, "
    "no offboarding, no audit of who holds it.",
)
def no_consumer_accounts(r: Subject) -> Iterator[str]:
    for role, member in grants(r):
        if _consumer(member):
            yield f"{member} (a consumer account) granted {role}"


@resource_rule(
    "GCP-IAM-007",
    "Service accounts of other projects are not granted access",
    "medium",
    ADVISE,
    [*ALL_IAM],
    "Grant the project's own service accounts, or document the cross-project trust.",
    description="A service account (or Workload Identity pool) of another project holding a "
    "role here extends this project's trust to whoever administers that project. Judged "
    "where the resource's project is in its inputs; Google's service agents are exempt.",
)
def no_foreign_service_accounts(r: Subject) -> Iterator[str]:
    home = _project_of(r)
    if home is None:
        return
    for role, member in grants(r):
        other = _foreign_project(member)
        if other is not None and other != home:
            yield f"{member} (project {other}) granted {role} in project {home}"


@resource_rule(
    "GCP-IAM-008",
    "No basic roles (owner, editor, viewer) on resources, project policies or project viewer",
    "high",
    ALWAYS,
    [*RESOURCE_IAM, *BUCKET_MEMBER_BINDING, *PROJECT_MEMBER_BINDING, *PROJECT_POLICY],
    "Grant predefined roles scoped to the need (roles/storage.objectViewer, ...).",
    ["CIS-GCP-2.0.0:1.5"],
    "Basic roles carry thousands of permissions across every service; Viewer alone reads most "
    "data (BigQuery tables, logs, configs). Owner and Editor on project members and bindings "
    "are GCP-IAM-002's; this rule covers Viewer there, and every basic role elsewhere.",
)
def no_basic_roles_elsewhere(r: Subject) -> Iterator[str]:
    project_member = r.type in PROJECT_MEMBER_BINDING
    for role, member in grants(r):
        if role in BASIC_ROLES and not (project_member and role != "roles/viewer"):
            yield f"{role} granted to {member}"


@resource_rule(
    "GCP-IAM-009",
    "No impersonation roles in a project policy or on a folder or organization",
    "high",
    ALWAYS,
    [*PROJECT_POLICY, *FOLDER_ORG],
    "Grant iam.serviceAccountUser / TokenCreator on the one service account that needs it.",
    ["CIS-GCP-2.0.0:1.6"],
    "serviceAccountUser or serviceAccountTokenCreator above a single service account lets the "
    "member act as every service account below it (privilege escalation). Project members and "
    "bindings: GCP-IAM-003.",
)
def no_broad_impersonation(r: Subject) -> Iterator[str]:
    for role, member in grants(r):
        if role in IMPERSONATION_ROLES:
            yield f"{role} granted to {member} on every service account below"


@resource_rule(
    "GCP-IAM-010",
    "No Cloud Storage HMAC keys",
    "high",
    ALWAYS,
    ["gcp:storage/hmacKey:HmacKey"],
    "Use Workload Identity (in GKE) or Workload Identity Federation; S3-compatible clients "
    "can use short-lived OAuth tokens.",
    description="An HMAC key is a long-lived secret for a service account, like a service "
    "account key (GCP-IAM-001), outside every IAM condition and token lifetime.",
)
def no_hmac_keys(r: Subject) -> Iterator[str]:
    if r.get("state", "ACTIVE") != "INACTIVE":
        yield f"an active HMAC key for {r.get('serviceAccountEmail')}"
