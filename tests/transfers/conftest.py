"""Object stores over their real protocols: S3 through moto's server mode."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, and ``aws_default`` pointing at the moto server."""
    import uuid

    import boto3

    extra = {"endpoint_url": moto_s3, "region_name": "us-east-1"}
    conn = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3",
        endpoint_url=moto_s3,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    return bucket
