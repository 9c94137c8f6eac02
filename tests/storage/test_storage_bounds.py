"""Storage under hostile or broken conditions: overlong keys never reach the server, every failure is
a bounded StorageError, an interrupted multipart upload leaves nothing behind, and shard reports or
markers that are huge, nested or garbage count as corrupt instead of crashing their reader."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from genfab.inventory import ShardReport, read_reports, write_report
from genfab.storage import Storage, StorageError, is_committed, open_storage
from tests.storage.s3 import BUCKET, MiB
from tests.storage.s3 import s3_settings as _settings


def s3(endpoint: str, prefix: str, **extra: int) -> Any:
    return open_storage(f"s3://{BUCKET}/{prefix}", _settings(endpoint, **extra))


def count_requests(storage: Any) -> dict[str, int]:
    sent = {"n": 0}

    def hook(**_: Any) -> None:
        sent["n"] += 1
    storage.client.meta.events.register("before-send.s3.*", hook)
    return sent


def test_overlong_keys_are_refused_before_any_request(s3_endpoint: str) -> None:
    storage = s3(s3_endpoint, "long")
    sent = count_requests(storage)
    for key in ("k" * 5000, "d/" * 520 + "x", "é" * 600):  # S3 counts UTF-8 bytes: é is 2
        with pytest.raises(StorageError, match="longer than 1024 bytes") as info:
            storage.write_bytes(key, b"x")
        assert len(str(info.value)) < 600  # the message names the key without repeating 5000 characters
    assert sent["n"] == 0


def test_overlong_keys_are_refused_on_file_storage_too(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="longer than 1024 bytes"):
        open_storage(f"file://{tmp_path}").write_bytes("k" * 2000, b"x")


def test_errors_that_are_not_botocore_become_storage_errors(s3_endpoint: str) -> None:
    storage = s3(s3_endpoint, "odd")

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")
    storage.client.put_object = broken
    with pytest.raises(StorageError, match=r"write .*odd/a\.txt failed: RuntimeError: cannot schedule"):
        storage.write_bytes("a.txt", b"x")


def test_an_interrupted_multipart_upload_is_aborted(s3_endpoint: str, tmp_path: Path) -> None:
    """Ctrl-C (or SIGTERM, which stages turn into the same) during the parts of a multipart upload."""
    storage = s3(s3_endpoint, "interrupted", multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(16 * MiB))
    parts = {"n": 0}
    handled = threading.Event()

    def on_sigint(*_: Any) -> None:
        handled.set()
        raise KeyboardInterrupt

    def interrupt_after_first_part(**kwargs: Any) -> None:
        if kwargs.get("event_name", "").startswith("before-send.s3.UploadPart"):
            parts["n"] += 1
            if parts["n"] == 2:
                os.kill(os.getpid(), signal.SIGINT)
            if parts["n"] >= 2:  # no part after the interrupt may reach the server: on a loaded machine
                handled.wait(10)  # parts released after a fixed wait once completed the upload before
                raise ConnectionError("part dropped: the upload was interrupted")  # boto3 cancelled it
    storage.client.meta.events.register("before-send.s3.UploadPart", interrupt_after_first_part)
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with pytest.raises(KeyboardInterrupt):
            storage.upload_file("scene/big.bin", big)
    finally:
        signal.signal(signal.SIGINT, previous)
    raw = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                       aws_secret_access_key="test-secret")
    left = raw.list_multipart_uploads(Bucket=BUCKET, Prefix="interrupted/").get("Uploads", [])
    assert left == [], f"incomplete multipart uploads left in the bucket: {left}"
    assert not storage.exists("scene/big.bin")


def test_a_killed_attempts_incomplete_upload_is_removed_by_the_retry(s3_endpoint: str,
                                                                      tmp_path: Path) -> None:
    storage = s3(s3_endpoint, "killed", multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    raw = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                       aws_secret_access_key="test-secret")
    # What a process killed halfway leaves: an upload with one part and no completion.
    upload = raw.create_multipart_upload(Bucket=BUCKET, Key="killed/scene/big.bin")["UploadId"]
    raw.upload_part(Bucket=BUCKET, Key="killed/scene/big.bin", UploadId=upload, PartNumber=1, Body=b"x" * 5 * MiB)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * MiB))
    storage.upload_file("scene/big.bin", big)
    assert raw.list_multipart_uploads(Bucket=BUCKET, Prefix="killed/").get("Uploads", []) == []
    assert storage.read_bytes("scene/big.bin") == big.read_bytes()


@pytest.fixture()
def run(tmp_path: Path) -> Storage:
    return open_storage(f"file://{tmp_path}/run")


def _report_key(index: int) -> str:
    from genfab.contract.names import report_key
    return report_key("segment", "h" * 64, index)


@pytest.mark.parametrize(("what", "raw"), [
    ("garbage", b"{not json"),
    ("nested", b"[" * 100_000 + b"]" * 100_000),
    ("wrong types", json.dumps({"stage": "segment", "configHash": 1, "index": "x"}).encode()),
    ("huge", b'{"stage": "' + b"x" * (17 * MiB) + b'"}'),
])
def test_a_corrupt_report_fails_its_shard_and_the_others_are_read(run: Storage, what: str, raw: bytes) -> None:
    good = ShardReport("segment", "h" * 64, 0, 2, state="succeeded", total=1, succeeded=["a"])
    write_report(run, good)
    run.write_bytes(_report_key(1), raw)
    reports = read_reports(run, "segment", "h" * 64)
    assert reports[0].succeeded == ["a"]
    bad = reports[1]
    assert bad.state == "failed" and bad.corrupt and bad.message.startswith("CorruptReport: ")
    assert len(bad.message) < 300 and not bad.succeeded


@pytest.mark.parametrize("raw", [b"[" * 100_000, b"{}", b'{"configHash": {"a": [1]}}', b"x" * (2 * MiB)])
def test_a_corrupt_marker_is_not_done(run: Storage, raw: bytes) -> None:
    run.write_bytes("samples/s1/_SUCCESS.json", raw)
    assert not is_committed(run, "samples/s1", "h1")
