"""Fixtures of the GCP rules in policies/rules_gcp_{access,audit,supply,lifecycle}.py: one
flaw each on the resource where it lives, everything else secure."""

from __future__ import annotations

import json
from typing import Any

Res = tuple[str, dict[str, Any]]

SQL = "gcp:sql/databaseInstance:DatabaseInstance"
GKE = "gcp:container/cluster:Cluster"
POOL = "gcp:container/nodePool:NodePool"
REPO = "gcp:artifactregistry/repository:Repository"
MEMO = "gcp:redis/instance:Instance"
KEY_MEMBER = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
KEY_BINDING = "gcp:kms/cryptoKeyIAMBinding:CryptoKeyIAMBinding"
REPO_MEMBER = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
BUCKET_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
BUCKET_POLICY = "gcp:storage/bucketIAMPolicy:BucketIAMPolicy"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
PROJECT_POLICY = "gcp:projects/iAMPolicy:IAMPolicy"
FOLDER_MEMBER = "gcp:folder/iAMMember:IAMMember"
SA_MEMBER = "gcp:serviceaccount/iAMMember:IAMMember"
AUDIT = "gcp:projects/iAMAuditConfig:IAMAuditConfig"

KEY_ID = "projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k"
OWN_SA = "serviceAccount:app@p.iam.gserviceaccount.com"
AGENT = "serviceAccount:service-123456789012@gcp-sa-cloud-sql.iam.gserviceaccount.com"
DECRYPT = "roles/cloudkms.cryptoKeyEncrypterDecrypter"


def policy_data(*bindings: tuple[str, list[str]]) -> str:
    return json.dumps({"bindings": [{"role": role, "members": m} for role, m in bindings]})


def postgres(**flags: str) -> Res:
    return (
        SQL,
        {
            "databaseVersion": "POSTGRES_17",
            "settings": {"databaseFlags": [{"name": k, "value": v} for k, v in flags.items()]},
        },
    )


AUDITED = {
    "cloudsql.enable_pgaudit": "on",
    "pgaudit.log": "ddl,role",
    "log_lock_waits": "on",
    "log_checkpoints": "on",
}

CASES: dict[str, tuple[list[Res], list[Res]]] = {
    # -- resource policies and ACLs ---------------------------------------------------------------
    "GCP-IAM-005": (
        [
            (KEY_MEMBER, {"cryptoKeyId": KEY_ID, "role": DECRYPT, "member": AGENT}),
            (BUCKET_POLICY, {"policyData": policy_data(("roles/storage.objectViewer", [OWN_SA]))}),
        ],
        [
            (KEY_BINDING, {"cryptoKeyId": KEY_ID, "role": DECRYPT, "members": ["allUsers"]}),
            (REPO_MEMBER, {"role": "roles/artifactregistry.reader", "member": "allUsers"}),
            (
                BUCKET_POLICY,
                {
                    "policyData": policy_data(
                        ("roles/storage.objectViewer", ["allAuthenticatedUsers"])
                    )
                },
            ),
        ],
    ),
    "GCP-GCS-008": (
        [
            (
                "gcp:storage/defaultObjectAccessControl:DefaultObjectAccessControl",
                {"bucket": "b", "entity": "group-ops@example.com", "role": "READER"},
            ),
            (
                "gcp:storage/defaultObjectACL:DefaultObjectACL",
                {"roleEntities": ["OWNER:project-owners-1"]},
            ),
        ],
        [
            (
                "gcp:storage/defaultObjectAccessControl:DefaultObjectAccessControl",
                {"bucket": "b", "entity": "allUsers", "role": "READER"},
            ),
            (
                "gcp:storage/defaultObjectACL:DefaultObjectACL",
                {"roleEntities": ["READER:allUsers"]},
            ),
            ("gcp:storage/bucketACL:BucketACL", {"bucket": "b", "defaultAcl": "publicRead"}),
        ],
    ),
    "GCP-GCS-009": (
        [
            ("gcp:storage/bucketACL:BucketACL", {"bucket": "b", "predefinedAcl": "private"}),
            (
                "gcp:storage/bucketAccessControl:BucketAccessControl",
                {"bucket": "b", "entity": "user-a@example.com", "role": "READER"},
            ),
        ],
        [
            (
                "gcp:storage/bucketAccessControl:BucketAccessControl",
                {"bucket": "b", "entity": "allAuthenticatedUsers", "role": "READER"},
            ),
            (
                "gcp:storage/bucketACL:BucketACL",
                {"bucket": "b", "roleEntities": ["READER:allUsers"]},
            ),
            (
                "gcp:storage/objectACL:ObjectACL",
                {"bucket": "b", "object": "o", "predefinedAcl": "publicRead"},
            ),
            (
                "gcp:storage/objectAccessControl:ObjectAccessControl",
                {"bucket": "b", "object": "o", "entity": "allUsers", "role": "READER"},
            ),
        ],
    ),
    # -- identity ---------------------------------------------------------------------------------
    "GCP-IAM-006": (
        [
            (
                BUCKET_MEMBER,
                {
                    "bucket": "b",
                    "role": "roles/storage.objectCreator",
                    "member": "group:cloud-storage-analytics@google.com",
                },
            ),
            (
                PROJECT_MEMBER,
                {"project": "p", "role": "roles/logging.viewer", "member": "group:ops@example.com"},
            ),
        ],
        [
            (
                PROJECT_MEMBER,
                {
                    "project": "p",
                    "role": "roles/logging.viewer",
                    "member": "user:someone@gmail.com",
                },
            ),
            (
                KEY_BINDING,
                {
                    "cryptoKeyId": KEY_ID,
                    "role": DECRYPT,
                    "members": ["group:team@googlegroups.com"],
                },
            ),
        ],
    ),
    "GCP-IAM-007": (
        [
            (KEY_MEMBER, {"cryptoKeyId": KEY_ID, "role": DECRYPT, "member": AGENT}),
            (
                SA_MEMBER,
                {
                    "serviceAccountId": "projects/p/serviceAccounts/app@p.iam.gserviceaccount.com",
                    "role": "roles/iam.workloadIdentityUser",
                    "member": "serviceAccount:p.svc.id.goog[apps/api]",
                },
            ),
            # the bucket's project is not in its inputs: not judged
            (
                BUCKET_MEMBER,
                {
                    "bucket": "b",
                    "role": "roles/storage.objectViewer",
                    "member": "serviceAccount:ci@other.iam.gserviceaccount.com",
                },
            ),
        ],
        [
            (
                KEY_MEMBER,
                {
                    "cryptoKeyId": KEY_ID,
                    "role": DECRYPT,
                    "member": "serviceAccount:ci@other.iam.gserviceaccount.com",
                },
            ),
            (
                SA_MEMBER,
                {
                    "serviceAccountId": "projects/p/serviceAccounts/app@p.iam.gserviceaccount.com",
                    "role": "roles/iam.workloadIdentityUser",
                    "member": "serviceAccount:other.svc.id.goog[apps/api]",
                },
            ),
        ],
    ),
    "GCP-IAM-008": (
        [
            # owner / editor on a project member: GCP-IAM-002's
            (
                PROJECT_MEMBER,
                {"project": "p", "role": "roles/owner", "member": "group:admins@example.com"},
            ),
            (KEY_MEMBER, {"cryptoKeyId": KEY_ID, "role": DECRYPT, "member": AGENT}),
        ],
        [
            (
                PROJECT_MEMBER,
                {"project": "p", "role": "roles/viewer", "member": "group:ops@example.com"},
            ),
            (BUCKET_MEMBER, {"bucket": "b", "role": "roles/editor", "member": OWN_SA}),
            (
                PROJECT_POLICY,
                {
                    "project": "p",
                    "policyData": policy_data(("roles/owner", ["group:admins@example.com"])),
                },
            ),
        ],
    ),
    "GCP-IAM-009": (
        [
            (
                PROJECT_POLICY,
                {"project": "p", "policyData": policy_data(("roles/logging.viewer", [OWN_SA]))},
            ),
            (
                FOLDER_MEMBER,
                {"folder": "folders/1", "role": "roles/browser", "member": "group:ops@example.com"},
            ),
        ],
        [
            (
                PROJECT_POLICY,
                {
                    "project": "p",
                    "policyData": policy_data(("roles/iam.serviceAccountUser", [OWN_SA])),
                },
            ),
            (
                FOLDER_MEMBER,
                {
                    "folder": "folders/1",
                    "role": "roles/iam.serviceAccountTokenCreator",
                    "member": "group:ci@example.com",
                },
            ),
        ],
    ),
    "GCP-IAM-010": (
        [
            (
                "gcp:storage/hmacKey:HmacKey",
                {"serviceAccountEmail": "app@p.iam.gserviceaccount.com", "state": "INACTIVE"},
            )
        ],
        [("gcp:storage/hmacKey:HmacKey", {"serviceAccountEmail": "app@p.iam.gserviceaccount.com"})],
    ),
    # -- audit and detection ----------------------------------------------------------------------
    "GCP-SQL-010": (
        [postgres(**AUDITED), (SQL, {"databaseVersion": "MYSQL_8_0", "settings": {}})],
        [postgres(), postgres(**{"cloudsql.enable_pgaudit": "on", "pgaudit.log": "none"})],
    ),
    "GCP-SQL-011": (
        [postgres(**AUDITED), postgres(**AUDITED, log_min_error_statement="panic")],
        [
            postgres(**{**AUDITED, "log_lock_waits": "off"}),
            postgres(**AUDITED, log_min_error_statement="info"),
        ],
    ),
    "GCP-LOG-001": (
        [
            (
                AUDIT,
                {
                    "project": "p",
                    "service": "allServices",
                    "auditLogConfigs": [
                        {"logType": t} for t in ("ADMIN_READ", "DATA_READ", "DATA_WRITE")
                    ],
                },
            )
        ],
        [
            (
                AUDIT,
                {
                    "project": "p",
                    "service": "allServices",
                    "auditLogConfigs": [{"logType": "ADMIN_READ"}],
                },
            ),
            (
                AUDIT,
                {
                    "project": "p",
                    "service": "storage.googleapis.com",
                    "auditLogConfigs": [
                        {"logType": "DATA_READ", "exemptedMembers": ["user:a@example.com"]}
                    ],
                },
            ),
        ],
    ),
    # -- supply chain and encryption --------------------------------------------------------------
    "GCP-GKE-015": (
        [(GKE, {"binaryAuthorization": {"evaluationMode": "PROJECT_SINGLETON_POLICY_ENFORCE"}})],
        [(GKE, {}), (GKE, {"binaryAuthorization": {"evaluationMode": "DISABLED"}})],
    ),
    "GCP-AR-002": (
        [(REPO, {"format": "DOCKER", "kmsKeyName": KEY_ID})],
        [(REPO, {"format": "DOCKER"})],
    ),
    "GCP-SQL-012": (
        [(SQL, {"databaseVersion": "POSTGRES_17", "encryptionKeyName": KEY_ID})],
        [(SQL, {"databaseVersion": "POSTGRES_17"})],
    ),
    "GCP-REDIS-004": (
        [(MEMO, {"tier": "STANDARD_HA", "customerManagedKey": KEY_ID})],
        [(MEMO, {"tier": "STANDARD_HA"})],
    ),
    # -- lifecycle (ends of support before this test was written; newer than the tables) -----------
    "GCP-SQL-013": (
        [(SQL, {"databaseVersion": "POSTGRES_99"}), (SQL, {"databaseVersion": "MYSQL_8_0"})],
        [(SQL, {"databaseVersion": "POSTGRES_13"})],
    ),
    "GCP-GKE-016": (
        [(GKE, {"minMasterVersion": "1.99"}), (POOL, {"version": "1.99.1-gke.100"})],
        [(GKE, {"minMasterVersion": "1.31"}), (POOL, {"version": "1.30.14-gke.2866000"})],
    ),
}
