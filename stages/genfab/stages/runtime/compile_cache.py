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

Loading the artifacts runs torch's deserialisation of the run's own storage inside the run's own Pod:
the resource's owner can already run any code there (a custom stage), so it gives nobody more power.
On the CPU, and in stages that never import torch, nothing happens."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from genfab.storage.base import Storage

log = logging.getLogger("genfab.stages")
PREFIX = "_genfab/compile-cache"
ENV = "GENFAB_COMPILE_CACHE"
LIMIT = 512 * 2**20
"""The largest artifact read back into memory (the Qwen Image Edit blocks' are 7 MiB); a larger object
in the run's storage is not read (one warning, a compile from scratch)."""


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
