"""The database bootstrap Job's script (components/k8s/database.py) against the machine's real
PostgreSQL, run as the managed services' admin is: a role with CREATEROLE and CREATEDB that is
not a superuser (RDS's master user, Cloud SQL's API-made admin). It must make each app's role
and database, be safe to run again, and leave each app able to log in to its own database
and no other."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.k8s.database import BOOTSTRAP_SQL, bootstrap_script

pytestmark = pytest.mark.integration

SUPERUSER = {
    "PGHOST": "127.0.0.1",
    "PGPORT": "5432",
    "PGUSER": "postgres",
    "PGDATABASE": "postgres",
}


def psql(sql: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        ["psql", "--no-psqlrc", "-Atqc", sql],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture
def admin() -> Iterator[dict[str, str]]:
    if shutil.which("psql") is None:
        pytest.fail("psql is needed (Debian: postgresql-client)")
    suffix = uuid.uuid4().hex[:8]
    name = f"dex_admin_{suffix}"
    psql(f"CREATE ROLE {name} LOGIN CREATEROLE CREATEDB PASSWORD 'admin-pw'", SUPERUSER)
    apps = {"mlflow": f"mlflow_{suffix}", "airflow": f"airflow_{suffix}"}
    yield {"admin": name, **apps}
    for app in apps.values():
        psql(f"DROP DATABASE IF EXISTS {app}", SUPERUSER)
        psql(f"DROP ROLE IF EXISTS {app}", SUPERUSER)
    psql(f"DROP ROLE IF EXISTS {name}", SUPERUSER)


def run_bootstrap(tmp_path: Path, names: dict[str, str], passwords: dict[str, str]) -> str:
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir(exist_ok=True)
    (sql_dir / "bootstrap.sql").write_text(BOOTSTRAP_SQL.lstrip())
    script = bootstrap_script(["airflow", "mlflow"]).replace("/sql/", f"{sql_dir}/")
    env = {
        "PGHOST": "127.0.0.1",
        "PGPORT": "5432",
        "PGUSER": names["admin"],
        "PGPASSWORD": "admin-pw",
        "PGDATABASE": "postgres",
        # the local server has no TLS; the Job verifies (verify-full/verify-ca) in the cloud
        "PGSSLMODE": "disable",
    }
    for app in ("mlflow", "airflow"):
        env[f"{app.upper()}_USER"] = names[app]
        env[f"{app.upper()}_DB"] = names[app]
        env[f"{app.upper()}_PASSWORD"] = passwords[app]
    out = subprocess.run(
        ["sh", "-c", script],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_bootstrap_as_a_non_superuser_admin_is_idempotent(
    admin: dict[str, str], tmp_path: Path
) -> None:
    first = run_bootstrap(tmp_path, admin, {"mlflow": "pw-1", "airflow": "pw-2"})
    assert "database mlflow: ready" in first
    assert "database airflow: ready" in first
    # again, with a rotated password: the same roles and databases, the new password
    run_bootstrap(tmp_path, admin, {"mlflow": "pw-3", "airflow": "pw-2"})
    app = admin["mlflow"]
    as_app = {
        "PGHOST": "127.0.0.1",
        "PGUSER": app,
        "PGPASSWORD": "pw-3",
        "PGDATABASE": app,
    }
    owner = psql(
        f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{app}'", SUPERUSER
    )
    assert owner == app
    assert psql("SELECT current_user", as_app) == app
    # an app cannot connect to the other app's database (CONNECT revoked from PUBLIC)
    other = subprocess.run(
        ["psql", "--no-psqlrc", "-Atqc", "SELECT 1"],
        env={**os.environ, **as_app, "PGDATABASE": admin["airflow"]},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert other.returncode != 0
    assert "permission denied" in other.stderr
