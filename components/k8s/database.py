"""The applications' databases inside the managed Postgres, created from the cluster.

The managed instance is private (no route from where `pulumi up` runs), so a Job inside the
cluster connects as the admin and makes each application's role and database, idempotently:
roles are created or have their password reset, databases are created only when missing, and
each application owns its own database. Both clouds run this one code path: the admin creates
the roles itself, so it holds ADMIN OPTION on them (PostgreSQL 16+ requires it to set their
passwords and grant them), and from 16 on `createrole_self_grant` also makes it a member
that may `SET ROLE` to them (needed to hand a database to its owner).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.contracts import DatabaseOutputs
from components.k8s.base import (
    PLATFORM_NS,
    POSTGRES_CA_CONFIGMAP,
    POSTGRES_CA_DIR,
    POSTGRES_CA_FILE,
    ca_volume,
    container_security,
    env_list,
    labels,
    pod_security,
    resources,
    secret_ref,
    untyped,
)
from components.options import take_depends_on

POSTGRES_CLIENT_IMAGE = (
    "postgres:17.6-alpine@sha256:ef257d85f76e48da1c64832459b59fcaba1a4dac97bf5d7450c77753542eee94"
)
BOOTSTRAP_UID = 10070
"""The Job's user and group (and fsGroup): above 10000, so no host account shares it (Checkov
CKV_K8S_40), instead of the image's own `postgres` (70). psql needs no account of its own:
the script passes the server, user and password through libpq's environment, reads its SQL
from the read-only ConfigMap mount and writes no file (`--no-psqlrc`, and `-f` is not
interactive, so no history). A uid with no passwd entry and an unwritable HOME runs the
script unchanged (tried with psql as uid 10070 against a TLS server, `verify-ca`)."""
BOOTSTRAP_SECRET = "database-bootstrap"
SCRIPT_HASH = "dex.dataenginex.io/script-sha256"
"""The pod template's annotation with the script's hash: a changed script is a changed spec,
and so a new Job (`replace_on_changes`)."""

BOOTSTRAP_SQL = r"""
\set ON_ERROR_STOP on
SELECT 'SET createrole_self_grant = ''set, inherit'''
WHERE current_setting('server_version_num')::int >= 160000 \gexec
SELECT format('CREATE ROLE %I LOGIN', :'app_user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
ALTER ROLE :"app_user" WITH LOGIN PASSWORD :'app_password';
GRANT :"app_user" TO CURRENT_USER;
SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \gexec
ALTER DATABASE :"app_db" OWNER TO :"app_user";
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;
\connect :"app_db"
SELECT $sql$DO $do$ BEGIN
  CREATE EXTENSION IF NOT EXISTS pgaudit;
EXCEPTION WHEN object_not_in_prerequisite_state THEN
  RAISE WARNING 'pgaudit is not preloaded yet (reboot the instance): extension not created';
END $do$$sql$
WHERE EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pgaudit') \gexec
"""
"""Run once per application with psql variables app_user, app_password, app_db. Where the
server offers pgAudit (RDS with `pgaudit` in shared_preload_libraries, Cloud SQL with
`cloudsql.enable_pgaudit`: both set by the stacks), the extension is created in the app's
database: both clouds' pgAudit guides ask for `CREATE EXTENSION pgaudit` in each database
audited. A server without it (the local platform) skips it. pg_available_extensions lists
what is installed, loaded or not: on an RDS instance that has not been rebooted since
`shared_preload_libraries` gained pgaudit (a static parameter, applied at the next reboot),
CREATE EXTENSION raises "pgaudit must be loaded via shared_preload_libraries" (SQLSTATE 55000,
object_not_in_prerequisite_state): the Job warns and goes on, and the next run after the
reboot creates it."""


def bootstrap_script(apps: list[str]) -> str:
    lines = ["set -eu"]
    for app in apps:
        upper = app.upper()
        lines.append(
            'psql "sslmode=${PGSSLMODE}" --no-psqlrc --quiet '
            f'-v app_user="${{{upper}_USER}}" -v app_password="${{{upper}_PASSWORD}}" '
            f'-v app_db="${{{upper}_DB}}" -f /sql/bootstrap.sql'
        )
        lines.append(f'echo "database {app}: ready"')
    return "\n".join(lines) + "\n"


def secret_data(db: DatabaseOutputs) -> dict[str, pulumi.Input[str]]:
    """What the bootstrap Job reads: the admin's password and each app's credentials."""
    data: dict[str, pulumi.Input[str]] = {"admin-password": db.admin_password}
    for app, spec in db.app_databases.items():
        data[f"{app}-password"] = spec.password
    return data


def bootstrap_env(db: DatabaseOutputs) -> dict[str, object]:
    """The Job's environment: libpq's connection as the admin (verifying the server with the
    mounted CA), and each application's role, database and password."""
    env: dict[str, object] = {
        "PGHOST": db.host,
        "PGPORT": db.port.apply(str),
        "PGUSER": db.admin_user,
        "PGDATABASE": "postgres",
        "PGSSLMODE": db.sslmode,
        "PGSSLROOTCERT": POSTGRES_CA_FILE,
        "PGCONNECT_TIMEOUT": "10",
        "PGPASSWORD": secret_ref(BOOTSTRAP_SECRET, "admin-password"),
    }
    for app in sorted(db.app_databases):
        spec = db.app_databases[app]
        env[f"{app.upper()}_USER"] = spec.user
        env[f"{app.upper()}_DB"] = spec.name
        env[f"{app.upper()}_PASSWORD"] = secret_ref(BOOTSTRAP_SECRET, f"{app}-password")
    return env


def script_data(apps: list[str]) -> dict[str, str]:
    """The ConfigMap `database-bootstrap`: the SQL and the shell script that runs it per app."""
    return {"bootstrap.sql": BOOTSTRAP_SQL.lstrip(), "bootstrap.sh": bootstrap_script(apps)}


def script_digest(data: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def bootstrap_job_spec(
    env: dict[str, object], job_labels: dict[str, str], script_hash: str
) -> dict[str, Any]:
    """The Job `spec`: psql from the pinned client image runs the script (ConfigMap
    `database-bootstrap`, whose hash the pod template carries), retried on failure, for at
    most 15 minutes."""
    ca, ca_mount = ca_volume(POSTGRES_CA_CONFIGMAP, POSTGRES_CA_DIR)
    return {
        "backoffLimit": 6,
        "activeDeadlineSeconds": 900,
        # no ttlSecondsAfterFinished: a Job the cluster deletes by itself is one
        # every `pulumi refresh` finds gone and every `up` creates again
        "template": {
            # the script's hash: the ConfigMap holds the script, so without it a changed
            # script would leave the Job's spec, and so the Job, as it was
            "metadata": {"labels": job_labels, "annotations": {SCRIPT_HASH: script_hash}},
            "spec": {
                "restartPolicy": "OnFailure",
                "automountServiceAccountToken": False,
                "securityContext": pod_security(BOOTSTRAP_UID),
                "containers": [
                    {
                        "name": "bootstrap",
                        "image": POSTGRES_CLIENT_IMAGE,
                        "command": ["sh", "/sql/bootstrap.sh"],
                        "env": env_list(env),
                        "resources": resources("50m", "64Mi"),
                        "securityContext": container_security(),
                        "volumeMounts": [
                            {"name": "sql", "mountPath": "/sql", "readOnly": True},
                            ca_mount,
                        ],
                    }
                ],
                "volumes": [
                    {"name": "sql", "configMap": {"name": "database-bootstrap"}},
                    ca,
                ],
            },
        },
    }


@dataclass(frozen=True)
class DatabaseBootstrapArgs:
    database: DatabaseOutputs
    """The managed Postgres (the database contract): where to connect, as whom, and the
    applications' databases to make."""


class DatabaseBootstrap(pulumi.ComponentResource):
    """The bootstrap Job and its script. Type token `dex:k8s:DatabaseBootstrap`. The Job waits
    for `opts.depends_on` (its Secret, the CA bundle, the namespace's policies)."""

    def __init__(
        self, name: str, args: DatabaseBootstrapArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        own, depends_on = take_depends_on(opts)
        super().__init__("dex:k8s:DatabaseBootstrap", name, None, own)
        db = args.database
        apps = sorted(db.app_databases)
        data = script_data(apps)
        script = k8s.core.v1.ConfigMap(
            f"{name}-sql",
            metadata=untyped({"name": "database-bootstrap", "namespace": PLATFORM_NS}),
            data=untyped(data),
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
        job_labels = labels("database-bootstrap", "bootstrap")
        self.job = k8s.batch.v1.Job(
            f"{name}-job",
            metadata=untyped(
                {"name": "database-bootstrap", "namespace": PLATFORM_NS, "labels": job_labels}
            ),
            spec=untyped(bootstrap_job_spec(bootstrap_env(db), job_labels, script_digest(data))),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[script, *depends_on],
                # a Job's template is immutable: a changed script runs as a new Job
                replace_on_changes=["spec"],
                delete_before_replace=True,
            ),
        )
        self.register_outputs({"job": "database-bootstrap", "databases": apps})
