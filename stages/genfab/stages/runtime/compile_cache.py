"""torch.compile's work shared by a stage's Pods: the first Pod of a stage on a GPU kind compiles, and
stores torch's cache artifacts (`torch.compiler.save_cache_artifacts`: inductor's compiled graphs and
Triton kernels, autotuning results, AOTAutograd's graphs) in the run's storage; every later Pod loads
them (`load_cache_artifacts`) before its first sample, so its compilations find their graphs there
instead of building them again (the Qwen Image Edit blocks, SEVA's network, the FLUX blocks: seconds to
minutes per Pod, every Pod). The artifacts are stored after the first Pod's first batch: Pods that start
together all compile; Pods of later waves (`parallelism`), retries and re-runs load them.

The artifacts are kept per stage and per runtime (torch, Triton and CUDA versions, the GPU's name and
compute capability) under `_genfab/compile-cache/<stage>/`; torch checks each entry against the graph,
inputs and settings that ask for it, so an artifact of another config or model costs nothing but the
compile it does not save. A Pod that loaded them does not store them again; a Pod that finds them
stored by another first does not overwrite them. A missing, unreadable or foreign artifact is one log
line and a compile from scratch, never a failed shard. `GENFAB_COMPILE_CACHE=off` in a stage's
environment turns it off.

The artifacts are code: torch unpickles inductor's entries as it loads them, and anyone who can write
the run's storage can put an artifact there. So the cache is used only where that gives nobody more
power: the operator turns it off (`GENFAB_COMPILE_CACHE=off`) in every stage Pod when the cluster keeps
the storage credentials from the resource's own code (`stages.customStageCredentials: false`: a
tenant's code must not run beside those credentials, as Zero123++'s `pipeline.py` is refused), and
`genfab run` never uses it (torch's own caches on the machine already keep a compile across its
processes). Where it is used, a file whose artifact keys are not plain relative names under torch's
cache folders (an absolute path, `..`, a NUL) is refused whole before torch sees it, so loading never
writes outside those folders. On the CPU, and in stages that never import torch, nothing happens."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from itertools import chain
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from genfab.contract.names import ENV_COMPILE_CACHE
from genfab.storage.base import Storage

log = logging.getLogger("genfab.stages")
PREFIX = "_genfab/compile-cache"
ENV = ENV_COMPILE_CACHE
LIMIT = 512 * 2**20
"""The largest artifact read back into memory (the Qwen Image Edit blocks' are 7 MiB); a larger object
in the run's storage is not read (one warning, a compile from scratch)."""


def unsafe_keys(data: bytes) -> list[str] | None:
    """The artifact keys in torch's portable cache format that would place a file outside torch's cache
    folders (None: not that format, or this torch cannot read it: not loaded either way). Read with
    torch's own reader of the outer format, which holds names and bytes only (nothing is unpickled)."""
    cache = sys.modules.get("torch.compiler._cache")  # imported with torch (the runtime imports no torch)
    manager = getattr(cache, "CacheArtifactManager", None)
    if manager is None:
        return None
    artifacts = manager.deserialize(data)
    if artifacts is None:
        return None
    return [a.key for a in chain(*artifacts.values()) if not safe_name(a.key)]


def safe_name(key: str) -> bool:
    """A relative name that stays inside the folder it is joined to."""
    if not key or "\0" in key or key.startswith(("/", "\\")) or PureWindowsPath(key).drive:
        return False
    return ".." not in PurePosixPath(key.replace("\\", "/")).parts


def artifact_key(stage: str, facts: dict[str, str]) -> str:
    """Where a stage's artifacts for one runtime live (relative to the run's storage)."""
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    return f"{PREFIX}/{stage}/{digest}.bin"


def runtime_facts(torch: Any) -> dict[str, str] | None:
    """What compiled kernels depend on beyond their graphs; None without a CUDA GPU."""
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    try:
        triton = version("triton")
    except PackageNotFoundError:
        triton = ""
    return {"torch": str(torch.__version__), "triton": triton, "cuda": str(torch.version.cuda),
            "gpu": str(props.name), "capability": f"{props.major}.{props.minor}"}


@dataclass
class CompileCache:
    storage: Storage
    key: str
    compiler: Any
    """`torch.compiler` (its `save_cache_artifacts` and `load_cache_artifacts`)."""
    loaded: bool = False

    @classmethod
    def for_shard(cls, storage: Storage, stage: str, env: Mapping[str, str]) -> CompileCache | None:
        """The shard's cache, or None: turned off, no torch imported by the stage, or no CUDA GPU."""
        if str(env.get(ENV, "")).lower() == "off":
            return None
        torch = sys.modules.get("torch")
        if torch is None:
            return None
        facts = runtime_facts(torch)
        return None if facts is None else cls(storage, artifact_key(stage, facts), torch.compiler)

    def load(self) -> None:
        """Before the stage's first compilation (its first sample)."""
        try:
            if not self.storage.exists(self.key):
                return
            data = self.storage.read_at_most(self.key, LIMIT, "the compile cache")
            unsafe = unsafe_keys(data)
            if unsafe is None or unsafe:
                log.warning("compile cache not loaded (%s): this Pod compiles from scratch",
                            f"artifact keys outside torch's cache folders: {unsafe[:3]!r}" if unsafe
                            else "not torch's cache format")
                return
            self.loaded = self.compiler.load_cache_artifacts(data) is not None
            log.info("compile cache loaded", extra={"key": self.key, "bytes": len(data)})
        except Exception as exc:  # a cache must never fail a shard
            log.warning("compile cache not loaded (%s: %s): this Pod compiles from scratch", type(exc).__name__,
                        str(exc)[:200])

    def save(self) -> None:
        """After the shard's first batch (its compilations done): what this Pod compiled, unless the
        run's storage has it already."""
        if self.loaded:
            return
        try:
            if self.storage.exists(self.key):
                return  # another Pod of the stage stored its artifacts first
            result = self.compiler.save_cache_artifacts()
            if result is None:
                return  # nothing was compiled
            data = result[0]
            self.storage.write_bytes(self.key, data)
            log.info("compile cache stored", extra={"key": self.key, "bytes": len(data)})
        except Exception as exc:
            log.warning("compile cache not stored (%s: %s)", type(exc).__name__, str(exc)[:200])
