"""Object stores over their real protocols: S3 through moto's server mode, GCS through
gcp-storage-emulator."""

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


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """gcp-storage-emulator in this process (in memory), speaking the GCS JSON API over HTTP."""
    import socket

    from gcp_storage_emulator.server import create_server

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def gcs_bucket(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket, and ``gs://`` paths served by gcsfs against the emulator.

    ``gs://`` is the google provider's where it is installed (the matrix's google-provider
    environment), and unregistered elsewhere: the test puts gcsfs in the registry Airflow built, over
    either.
    """
    import uuid

    from airflow.sdk.io import store as airflow_store

    try:
        from airflow.sdk.io import fs as airflow_fs
    except ImportError:  # Airflow 3.0 keeps the filesystem registry in airflow.io
        import airflow.io as airflow_fs  # type: ignore[no-redef]

    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    gcs = emulator_gcsfs(gcs_emulator)
    gcs.mkdir(bucket)
    # attach() caches a store (and its filesystem) per scheme and connection for the process: without
    # a fresh cache, every test after the first would write through the first test's gcsfs.
    monkeypatch.setattr(airflow_store, "_STORE_CACHE", {})
    airflow_fs._register_filesystems.cache_clear()
    monkeypatch.setitem(airflow_fs._register_filesystems(), "gs", lambda conn_id, options: gcs)  # type: ignore[index]
    yield bucket
    airflow_fs._register_filesystems.cache_clear()


def emulator_gcsfs(endpoint: str):  # type: ignore[no-untyped-def]
    """gcsfs pointed at the emulator.

    ``gcsfs.core.GCSFileSystem``, not ``gcsfs.GCSFileSystem``: that one (ExtendedGcsFileSystem) looks
    up each bucket's type over gRPC before opening a file, which an HTTP-only emulator never answers
    (a 60 s deadline, then a fallback). And the emulator answers the objects ``moveTo`` call (what
    ``rename`` becomes) with 501, which gcsfs retries with backoff for ~35 s before falling back to
    copy and delete: go straight to copy and delete.
    """
    from fsspec.asyn import AsyncFileSystem
    from gcsfs.core import GCSFileSystem

    class EmulatorGCSFileSystem(GCSFileSystem):
        async def _mv_file(self, path1, path2, **kwargs):  # type: ignore[no-untyped-def]
            await AsyncFileSystem._mv_file(self, path1, path2, **kwargs)

    return EmulatorGCSFileSystem(
        endpoint_url=endpoint, token="anon", project="test", skip_instance_cache=True
    )
