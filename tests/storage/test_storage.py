"""genfab.storage against a real S3-compatible HTTP server (moto) and the local filesystem.

Both backends run the same tests (parametrized), so `file://` and `s3://` behave the same.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from genfab.storage import (
    Marker,
    Reuse,
    S3Settings,
    Storage,
    StorageError,
    check_reuse,
    is_committed,
    open_storage,
    read_marker,
    write_marker,
)
from tests.storage.s3 import BUCKET, MiB, s3_settings


def test_bytes_round_trip_exists_and_stream(storage: Storage) -> None:
    storage.write_bytes("a/b/c.txt", b"hello")
    assert storage.read_bytes("a/b/c.txt") == b"hello"
    assert storage.exists("a/b/c.txt") and not storage.exists("a/b/missing.txt")
    with storage.open_read("a/b/c.txt") as stream:
        assert stream.read() == b"hello"
    with pytest.raises(StorageError, match="not found"):
        storage.read_bytes("a/b/missing.txt")


def test_multipart_file_round_trip_and_copy(storage: Storage, tmp_path: Path) -> None:
    data = bytes(range(256)) * (12 * MiB // 256 + 7)  # 12 MiB + a bit: 3 parts at a 5 MiB chunk size
    src = tmp_path / "big.ply"
    src.write_bytes(data)
    storage.upload_file("scene/gf.ply", src)
    storage.copy("scene/gf.ply", "scene/copy.ply")
    out = tmp_path / "down" / "copy.ply"
    storage.download_file("scene/copy.ply", out)
    assert out.read_bytes() == data
    assert [o.size for o in storage.list("scene/")] == [len(data), len(data)]


def test_listing_more_than_2000_keys_and_delete_prefix(storage: Storage) -> None:
    from concurrent.futures import ThreadPoolExecutor

    keys = [f"many/{i:05d}.json" for i in range(2100)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: storage.write_bytes(k, b"{}"), keys))
    storage.write_bytes("other/x.json", b"{}")
    assert [o.key for o in storage.list("many/")] == keys
    assert storage.delete_prefix("many/") == 2100
    assert list(storage.list("many/")) == [] and storage.exists("other/x.json")


def test_delete_keys_deletes_exactly_those_and_listing_says_when_written(storage: Storage) -> None:
    import time

    before = time.time() - 5
    for key in ("d/a.png", "d/a.png.txt", "d/b.png"):
        storage.write_bytes(key, b"x")
    storage.delete_keys(["d/a.png", "d/missing.png"])  # a missing key is no error
    listed = list(storage.list("d/"))
    assert [o.key for o in listed] == ["d/a.png.txt", "d/b.png"]  # a key, not a prefix
    assert all(o.modified is not None and before < o.modified < time.time() + 5 for o in listed)
    storage.delete_keys([])


@pytest.mark.parametrize("key", ["../escape.txt", "a/../../b", "/etc/passwd", "a\\b", "a/./b", "nul\x00byte"])
def test_path_traversal_is_rejected(storage: Storage, key: str) -> None:
    with pytest.raises(StorageError, match="unsafe storage key"):
        storage.write_bytes(key, b"x")


def test_marker_commit_and_interrupted_write(storage: Storage) -> None:
    assert not is_committed(storage, "samples/s1", "h1")
    # Interrupted before the marker: data present, no marker -> not done.
    storage.write_bytes("samples/s1/image.png", b"partial")
    assert not is_committed(storage, "samples/s1", "h1")
    storage.write_many([("samples/s1/image.png", b"png"), ("samples/s1/meta.json", b"{}")])
    marker = Marker("h1", {"samples/s1/image.png": "sha-a", "samples/s1/meta.json": "sha-b"}, {"seconds": 1.5})
    write_marker(storage, "samples/s1", marker)
    assert is_committed(storage, "samples/s1", "h1")
    assert not is_committed(storage, "samples/s1", "h2"), "a changed config hash invalidates the sample"
    assert read_marker(storage, "samples/s1") == marker
    storage.write_bytes("samples/s2/_SUCCESS.json", b"{not json")
    assert not is_committed(storage, "samples/s2", "h1"), "a corrupt marker is no marker"


def verdict(reuse: Reuse) -> tuple[bool, str]:
    return reuse.committed, reuse.problem


def test_reuse_checks_existence_size_and_on_request_sha256(storage: Storage) -> None:
    data = {"s/a.png": b"pixels", "s/b.json": b"{}"}
    storage.write_many(data.items())
    digests = {k: hashlib.sha256(v).hexdigest() for k, v in data.items()}
    write_marker(storage, "s", Marker("h1", digests, sizes={k: len(v) for k, v in data.items()}))
    assert storage.size("s/a.png") == 6 and storage.size("s/none") is None and storage.size("s") is None
    assert verdict(check_reuse(storage, "s", "h1", "sha256")) == (True, "")
    storage.write_bytes("s/a.png", b"PIXELS")  # same size, other content
    assert verdict(check_reuse(storage, "s", "h1")) == (True, "")
    assert verdict(check_reuse(storage, "s", "h1", "sha256")) == (
        False, "output s/a.png changed since it was committed (sha256)")
    storage.write_bytes("s/a.png", b"pix")
    assert verdict(check_reuse(storage, "s", "h1")) == (False, "output s/a.png is 3 bytes, 6 when committed")
    storage.delete_prefix("s/b.json")
    write_marker(storage, "s", Marker("h1", {"s/b.json": digests["s/b.json"]}))  # an old marker: no sizes
    assert verdict(check_reuse(storage, "s", "h1")) == (False, "output s/b.json is missing")
    other = check_reuse(storage, "s", "h2")
    assert verdict(other) == (False, ""), "another config: not committed, nothing broken"
    assert other.previous == read_marker(storage, "s")  # what making it again replaces


def test_bad_uris_get_clear_errors() -> None:
    with pytest.raises(StorageError, match=r"bad storage URI.*s3://\.\.\. or file://"):
        open_storage("gs://bucket/x")
    with pytest.raises(StorageError, match="not a valid bucket"):
        open_storage("s3://B/x", S3Settings())


def test_transient_faults_are_retried_without_data_loss(s3_endpoint: str) -> None:
    """Inject 503 SlowDown / 500 InternalError responses before the request reaches the server."""
    from botocore.awsrequest import AWSResponse

    storage = open_storage(f"s3://{BUCKET}/faults", s3_settings(s3_endpoint))
    assert hasattr(storage, "client")
    faults = {"left": 6}

    class _Raw:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def stream(self, **_: object) -> Iterator[bytes]:
            yield self.body

    def inject(request: object, **_: object) -> AWSResponse | None:
        if faults["left"] <= 0:
            return None
        faults["left"] -= 1
        code, status = ("SlowDown", 503) if faults["left"] % 2 else ("InternalError", 500)
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        return AWSResponse("http://injected", status, {}, _Raw(body))

    storage.client.meta.events.register("before-send.s3.*", inject)
    for i in range(3):
        storage.write_bytes(f"obj{i}", f"payload {i}".encode())
    assert faults["left"] == 0, "every injected fault was hit"
    assert [storage.read_bytes(f"obj{i}") for i in range(3)] == [f"payload {i}".encode() for i in range(3)]


def test_secrets_never_appear_in_errors_or_repr(s3_endpoint: str) -> None:
    settings = S3Settings(endpoint=s3_endpoint, addressing_style="path", access_key_id="test",
                          secret_access_key="SUPERSECRETKEY123", max_attempts=1)
    assert "SUPERSECRETKEY123" not in repr(settings)
    storage = open_storage("s3://no-such-bucket-genfab/x", settings)
    with pytest.raises(StorageError) as info:
        storage.write_bytes("k", b"v")
    assert "SUPERSECRETKEY123" not in str(info.value) and "NoSuchBucket" in str(info.value)


def test_credentials_from_a_mounted_secret(tmp_path: Path) -> None:
    (tmp_path / "AWS_ACCESS_KEY_ID").write_text("AKIA-FROM-FILE\n")
    (tmp_path / "AWS_SECRET_ACCESS_KEY").write_text("from-file")
    settings = S3Settings.from_env({"GENFAB_S3_SECRET_DIR": str(tmp_path), "GENFAB_S3_ENDPOINT": "http://minio:9000",
                                    "GENFAB_S3_ADDRESSING_STYLE": "path"})
    assert (settings.access_key_id, settings.secret_access_key) == ("AKIA-FROM-FILE", "from-file")
    assert (settings.endpoint, settings.addressing_style) == ("http://minio:9000", "path")


def test_listing_a_missing_bucket_names_it(s3_endpoint: str) -> None:
    storage = open_storage("s3://no-such-bucket-genfab", s3_settings(s3_endpoint, max_attempts=1))
    with pytest.raises(StorageError, match=r"list s3://no-such-bucket-genfab failed: NoSuchBucket"):
        list(storage.list())


def test_concurrent_many_round_trip(storage: Storage) -> None:
    items = [(f"many/{i:04d}.bin", bytes([i % 256]) * (i + 1)) for i in range(300)]
    assert storage.write_many(items, workers=8) == 300
    assert storage.read_many([k for k, _ in items], workers=8) == dict(items)


def test_no_credential_reaches_a_log_at_debug_level(s3_endpoint: str, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """botocore and urllib3 at DEBUG print headers, canonical requests and signatures: with fake
    credentials, none of their values (nor a signature) may appear in what the handlers get."""
    key_id, secret, token = "AKIAFAKEKEYID0123456", "fake/SECRET+access+key+0123456789", "FwoGZXIvYXdzEFAKE-TOKEN-42"
    settings = S3Settings(endpoint=s3_endpoint, addressing_style="path", access_key_id=key_id,
                          secret_access_key=secret, session_token=token)
    storage = open_storage(f"s3://{BUCKET}/logs", settings)
    (tmp_path / "f.bin").write_bytes(b"x" * 1024)
    with caplog.at_level(logging.DEBUG):
        storage.write_bytes("a.txt", b"hello")
        assert storage.read_bytes("a.txt") == b"hello"
        storage.upload_file("f.bin", tmp_path / "f.bin")
        assert [o.key for o in storage.list()] == ["a.txt", "f.bin"]
        storage.delete_prefix("")
    text = caplog.text
    assert "CanonicalRequest" in text and "Signature=" in text, "botocore's debug output was not captured"
    for value in (key_id, secret, token):
        assert value not in text
    assert not re.search(r"Signature=[0-9a-f]{16}", text)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_local_files_get_the_umasks_mode_like_any_new_file(tmp_path: Path, umask: int, mode: int) -> None:
    """Atomic writes go through a temporary file (owner-only by default): the committed file has the
    mode the umask gives, so another uid on a shared volume (the dataset's readers, the operator) can
    read it where the umask lets it."""
    import os

    from genfab.storage import open_storage

    old = os.umask(umask)
    try:
        store = open_storage(f"file://{tmp_path}")
        store.write_bytes("a/b.json", b"{}")
        source = tmp_path / "src.bin"
        source.write_bytes(b"x")
        store.upload_file("a/c.bin", source)
    finally:
        os.umask(old)
    assert {(tmp_path / "a" / n).stat().st_mode & 0o777 for n in ("b.json", "c.bin")} == {mode}
