"""`dex local up --once` on the machine's real PostgreSQL (MLflow's backend) and Redis, with
the lake and MLflow's artifacts on an S3 endpoint (a file of its own: one long run, which the
parallel test workers then schedule apart from the others)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.integration.test_local import champion, local_up, prediction

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_local_up_on_postgres_redis_and_an_s3_endpoint(
    tmp_path: Path, postgres_url: str, redis_url: str, s3_endpoint: str
) -> None:
    """The loop on the machine's real PostgreSQL (MLflow's backend) and Redis (the API's
    cache and rate limits) with the lake and MLflow's artifacts on an S3 endpoint: the cloud's
    shape, in one run (each backend alone adds nothing this run does not exercise)."""
    import boto3
    import psycopg2

    db = f"dex_local_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{db}"')
    backend = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
    try:
        result = local_up(
            tmp_path / "local", "--postgres", backend, "--redis", redis_url,
            "--s3-endpoint", s3_endpoint,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        answer = prediction(result.stdout)
        assert answer["location"] == "berlin"
        assert answer["model_version"] == champion(backend)
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    features = s3.list_objects_v2(Bucket="dex-local", Prefix="lake/gold/weather/features/")
    assert features["KeyCount"] == 4  # one object per location
    artifacts = s3.list_objects_v2(Bucket="dex-local", Prefix="mlflow/")
    assert any(o["Key"].endswith("MLmodel") for o in artifacts["Contents"])
    assert not (tmp_path / "local" / "lake").exists()  # the lake lives on the endpoint
