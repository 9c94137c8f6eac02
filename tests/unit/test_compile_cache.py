"""The compile cache shared by a stage's Pods (genfab.stages.runtime.compile_cache), with file storage,
artifacts in torch's own portable format and a stand-in for `torch.compiler`'s two calls (the real ones
are exercised on the GPU: tests/gpu)."""

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


def artifacts(*keys: str, content: bytes = b"kernels") -> bytes:
    """torch's portable cache format (`save_cache_artifacts`' bytes) holding autotune entries of these keys."""
    from torch.compiler._cache import CacheArtifactFactory, CacheArtifactManager, _serialize_single_cache
    from torch.utils._appending_byte_serializer import AppendingByteSerializer

    CacheArtifactManager._ensure_cache_artifacts_registered()
    out: AppendingByteSerializer[Any] = AppendingByteSerializer(serialize_fn=_serialize_single_cache)
    out.extend([("autotune", [CacheArtifactFactory.create("autotune", k, content) for k in keys])])
    return out.to_bytes()


KERNELS = artifacts("triton/ab/cd.best_config")


class Compiler:
    """`torch.compiler`'s two calls: artifacts of what was compiled, and loading them."""

    def __init__(self, compiled: bytes | None = KERNELS, fails: bool = False) -> None:
        self.compiled, self.fails, self.loads = compiled, fails, []  # type: list[bytes]

    def save_cache_artifacts(self) -> tuple[bytes, object] | None:
        return None if self.compiled is None else (self.compiled, object())

    def load_cache_artifacts(self, data: bytes) -> object | None:
        if self.fails:
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
    first = cache(tmp_path, Compiler(KERNELS))
    first.load()  # nothing stored yet
    assert not first.loaded
    first.save()
    assert (tmp_path / first.key).read_bytes() == KERNELS
    later = Compiler(artifacts("other"))
    second = cache(tmp_path, later)
    second.load()
    assert second.loaded and later.loads == [KERNELS]
    second.save()  # it loaded them: nothing is written again
    assert (tmp_path / first.key).read_bytes() == KERNELS


def test_a_pod_never_overwrites_artifacts_another_stored_first(tmp_path: Path) -> None:
    a, b = cache(tmp_path, Compiler(artifacts("from/a"))), cache(tmp_path, Compiler(artifacts("from/b")))
    a.load()
    b.load()  # both started before either stored
    a.save()
    b.save()
    assert (tmp_path / a.key).read_bytes() == artifacts("from/a")


def test_nothing_compiled_stores_nothing(tmp_path: Path) -> None:
    c = cache(tmp_path, Compiler(None))
    c.save()
    assert not (tmp_path / c.key).exists()


def test_a_broken_artifact_is_one_warning_and_a_compile_from_scratch(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    c = cache(tmp_path, Compiler(fails=True))
    (tmp_path / c.key).parent.mkdir(parents=True)
    (tmp_path / c.key).write_bytes(KERNELS)
    with caplog.at_level(logging.WARNING, "genfab.stages"):
        c.load()
    assert not c.loaded
    assert [r.getMessage() for r in caplog.records] == [
        "compile cache not loaded (RuntimeError: unpickling failed): this Pod compiles from scratch"]


@pytest.mark.parametrize("key", ["/usr/lib/python3/site-packages/evil.pth", "../../../home/user/.bashrc",
                                 "triton/../../x", "C:\\Windows\\x", "a\\..\\..\\x", "x\0y"])
def test_an_artifact_that_would_land_outside_torchs_cache_folders_is_refused_whole(
        tmp_path: Path, key: str, caplog: pytest.LogCaptureFixture) -> None:
    """An artifact's key is joined to torch's cache folder as it loads (an absolute key writes anywhere
    the process may write): such a file is never handed to torch, and nothing of it is loaded."""
    compiler = Compiler()
    c = cache(tmp_path, compiler)
    (tmp_path / c.key).parent.mkdir(parents=True)
    (tmp_path / c.key).write_bytes(artifacts("triton/ok.best_config", key))
    with caplog.at_level(logging.WARNING, "genfab.stages"):
        c.load()
    assert not c.loaded and compiler.loads == []
    assert "compile cache not loaded (artifact keys outside torch's cache folders: [" in caplog.text


def test_bytes_not_in_torchs_format_are_not_handed_to_torch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    compiler = Compiler()
    c = cache(tmp_path, compiler)
    (tmp_path / c.key).parent.mkdir(parents=True)
    (tmp_path / c.key).write_bytes(b"a pickle, say")
    with caplog.at_level(logging.WARNING, "genfab.stages"):
        c.load()
    assert not c.loaded and compiler.loads == []
    assert "compile cache not loaded (not torch's cache format)" in caplog.text


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
    (tmp_path / c.key).write_bytes(KERNELS)
    with caplog.at_level(logging.WARNING, "genfab.stages"):
        c.load()
    assert not c.loaded and compiler.loads == [] and "StorageTooLarge" in caplog.text
