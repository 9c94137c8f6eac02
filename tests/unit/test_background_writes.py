"""`Sample.write_later` and `write_file_later`: outputs encoded off the stage's thread keep the marker's
order, checksums and sizes of what was stored, and a failed or empty encoding fails the commit."""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from genfab.inventory import SampleRef
from genfab.stages.runtime import Sample
from genfab.storage import read_marker
from genfab.storage.local import FileStorage


def _sample(tmp_path: Path, writer: ThreadPoolExecutor) -> tuple[Sample, FileStorage]:
    out = FileStorage(f"file://{tmp_path / 'out'}", tmp_path / "out")
    ctx = SimpleNamespace(output=out, writer=writer, config_hash="h", base_hash="h")
    return Sample(SampleRef("s"), ctx, "s", previous=None), out  # type: ignore[arg-type]


def test_background_outputs_keep_the_order_they_were_written_in_and_record_what_was_stored(tmp_path: Path) -> None:
    released = threading.Event()

    def slow() -> bytes:  # finishes last although it was asked for first
        released.wait(5)
        return b"slow bytes"

    def make(path: Path) -> None:
        path.write_bytes(b"a local file")
        released.set()

    with ThreadPoolExecutor(4) as writer:
        sample, out = _sample(tmp_path, writer)
        sample.write_later("a/slow.bin", slow)
        sample.write("b/now.json", b"{}")
        sample.write_file_later("c/file.ply", tmp_path / "local.ply", make)
        began = time.monotonic()
        sample.commit(0.0)
    assert time.monotonic() - began < 5
    marker = read_marker(out, "s")
    assert marker is not None
    assert list(marker.outputs) == ["a/slow.bin", "b/now.json", "c/file.ply"]
    for key, data in (("a/slow.bin", b"slow bytes"), ("b/now.json", b"{}"), ("c/file.ply", b"a local file")):
        assert out.read_bytes(key) == data
        assert marker.outputs[key] == hashlib.sha256(data).hexdigest()
        assert marker.sizes[key] == len(data)


@pytest.mark.parametrize("how", ["raises", "empty", "missing"])
def test_a_failed_background_encoding_fails_the_commit_and_writes_no_marker(tmp_path: Path, how: str) -> None:
    def make(path: Path) -> None:
        if how == "raises":
            raise ValueError("encoder broke")
        if how == "empty":
            path.write_bytes(b"")

    with ThreadPoolExecutor(2) as writer:
        sample, out = _sample(tmp_path, writer)
        sample.write("kept.json", b"{}")
        sample.write_file_later("video.mp4", tmp_path / "video.mp4", make)
        with pytest.raises((ValueError, RuntimeError), match=r"encoder broke|video\.mp4 was not written"):
            sample.commit(0.0)
    assert read_marker(out, "s") is None
