"""A real S3-compatible server for the storage tier (moto on localhost, one bucket) and a storage
fixture that runs a test on `file://` and on `s3://` alike."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from genfab.storage import S3Settings, Storage, open_storage

BUCKET = "genfab-test"


KiB = 1 << 10


MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test-secret").create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def s3_settings(endpoint: str, **extra: int) -> S3Settings:
    return S3Settings(endpoint=endpoint, addressing_style="path", access_key_id="test",
                      secret_access_key="SUPERSECRETKEY123", **extra)  # type: ignore[arg-type]


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return open_storage(f"file://{tmp_path}/root")
    endpoint = request.getfixturevalue("s3_endpoint")
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)
    return open_storage(f"s3://{BUCKET}/{prefix}", s3_settings(endpoint, multipart_threshold=5 * MiB,
                                                              multipart_chunksize=5 * MiB))
