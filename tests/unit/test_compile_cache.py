"""The compile cache shared by a stage's Pods (genfab.stages.runtime.compile_cache), with file storage
and a stand-in for `torch.compiler` (the real one is exercised on the GPU: tests/gpu)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from genfab.stages.runtime.compile_cache import PREFIX, CompileCache, artifact_key
from genfab.storage import open_storage

FACTS = {"torch": "2.11.0", "triton": "3.6.0", "cuda": "13.0", "gpu": "NVIDIA H200", "capability": "9.0"}


class Compiler:
    """`torch.compiler`'s two calls: artifacts of what was compiled, and loading them."""

    def __init__(self, compiled: bytes | None = b"kernels") -> None:
        self.compiled, self.loads = compiled, []  # type: list[bytes]

    def save_cache_artifacts(self) -> tuple[bytes, object] | None:
        return None if self.compiled is None else (self.compiled, object())

    def load_cache_artifacts(self, data: bytes) -> object | None:
        if data == b"broken":
            raise RuntimeError("unpickling failed")
        self.loads.append(data)
        return object()


def cache(tmp_path: Path, compiler: Compiler) -> CompileCache:
    return CompileCache(open_storage(f"file://{tmp_path}"), artifact_key("scenes", FACTS), compiler)


def test_the_key_names_the_stage_and_changes_with_the_runtime() -> None:
    key = artifact_key("scenes", FACTS)
    assert key.startswith(f"{PREFIX}/scenes/") and key.endswith(".bin")
    assert artifact_key("scenes", {**FACTS, "gpu": "NVIDIA H100 80GB HBM3"}) != key
    assert artifact_key("scenes", {**FACTS, "torch": "2.12.0"}) != key
    assert artifact_key("perspectives", FACTS) != key
    assert artifact_key("scenes", dict(reversed(FACTS.items()))) == key


def test_the_first_pod_stores_what_it_compiled_and_the_next_loads_it(tmp_path: Path) -> None:
    first = cache(tmp_path, Compiler(b"kernels"))
    first.load()  # nothing stored yet
    assert not first.loaded
    first.save()
    assert (tmp_path / first.key).read_bytes() == b"kernels"
    later = Compiler(b"other kernels")
    second = cache(tmp_path, later)
    second.load()
    assert second.loaded and later.loads == [b"kernels"]
    second.save()  # it loaded them: nothing is written again
    assert (tmp_path / first.key).read_bytes() == b"kernels"


def test_a_pod_never_overwrites_artifacts_another_stored_first(tmp_path: Path) -> None:
    a, b = cache(tmp_path, Compiler(b"from a")), cache(tmp_path, Compiler(b"from b"))
    a.load()
    b.load()  # both started before either stored
    a.save()
    b.save()
    assert (tmp_path / a.key).read_bytes() == b"from a"


def test_nothing_compiled_stores_nothing(tmp_path: Path) -> None:
    c = cache(tmp_path, Compiler(None))
    c.save()
    assert not (tmp_path / c.key).exists()


def test_a_broken_artifact_is_one_warning_and_a_compile_from_scratch(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    c = cache(tmp_path, Compiler())
    (tmp_path / c.key).parent.mkdir(parents=True)
    (tmp_path / c.key).write_bytes(b"broken")
    with caplog.at_level(logging.WARNING, "genfab.stages"):
        c.load()
    assert not c.loaded
    assert [r.getMessage() for r in caplog.records] == [
        "compile cache not loaded (RuntimeError: unpickling failed): this Pod compiles from scratch"]


def test_a_storage_error_on_store_is_a_warning_not_a_failed_shard(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    c = cache(tmp_path, Compiler())
    c.storage = SimpleNamespace(exists=lambda key: False, write_bytes=lambda *a: (_ for _ in ()).throw(  # type: ignore[assignment]
        OSError("read-only file system")))
    with caplog.at_level(logging.WARNING, "genfab.stages"):
        c.save()
    assert "compile cache not stored (OSError: read-only file system)" in caplog.text


class FakeTorch:
    def __init__(self, cuda: bool) -> None:
        props = SimpleNamespace(name="NVIDIA H200", major=9, minor=0)
        self.cuda = SimpleNamespace(is_available=lambda: cuda, get_device_properties=lambda i: props)
        self.version = SimpleNamespace(cuda="13.0")
        self.__version__ = "2.11.0"
        self.compiler = Compiler()


@pytest.mark.parametrize("torch, env, active", [
    (None, {}, False),  # a stage that never imported torch (CPU work)
    (FakeTorch(cuda=False), {}, False),  # torch on the CPU: nothing is compiled
    (FakeTorch(cuda=True), {}, True),
    (FakeTorch(cuda=True), {"GENFAB_COMPILE_CACHE": "off"}, False),
])
def test_only_stages_with_torch_on_a_gpu_use_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, torch: Any,
                                                env: dict[str, str], active: bool) -> None:
    if torch is None:
        monkeypatch.delitem(sys.modules, "torch", raising=False)
    else:
        monkeypatch.setitem(sys.modules, "torch", torch)
    found = CompileCache.for_shard(open_storage(f"file://{tmp_path}"), "scenes", env)
    assert (found is not None) == active
    if found is not None:
        assert found.compiler is torch.compiler and found.key.startswith(f"{PREFIX}/scenes/")


def test_an_artifact_over_the_bound_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    from genfab.stages.runtime import compile_cache

    monkeypatch.setattr(compile_cache, "LIMIT", 4)
    compiler = Compiler()
    c = cache(tmp_path, compiler)
    (tmp_path / c.key).parent.mkdir(parents=True)
    (tmp_path / c.key).write_bytes(b"far too large")
    with caplog.at_level(logging.WARNING, "genfab.stages"):
        c.load()
    assert not c.loaded and compiler.loads == [] and "StorageTooLarge" in caplog.text
