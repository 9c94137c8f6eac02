"""`StageContext`: everything a shard process knows, built from the mounted config and its env."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from genfab.planner.contract import (
    CONFIG_PATH,
    CONTRACT_VERSION,
    ENV_CONFIG,
    ENV_INDEX,
    ENV_SHARDS,
    shard_bounds,
)
from genfab.stages.runtime.errors import BadInput
from genfab.storage import Storage, open_storage
from genfab.storage.inventory import InventoryError, SampleRef, resolve_samples, source_root


@dataclass
class StageContext:
    raw: dict[str, Any]
    """The mounted stage config (see `genfab.planner.contract.stage_config`)."""
    index: int
    shards: int
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def stage(self) -> str:
        return str(self.raw["stage"])

    @property
    def config_hash(self) -> str:
        return str(self.raw["configHash"])

    @property
    def config(self) -> dict[str, Any]:
        """The stage's typed parameters (camelCase, as in the resource's spec)."""
        return dict(self.raw.get("config") or {})

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.raw.get("options") or {})

    @property
    def input_uris(self) -> list[str]:
        return list(self.raw.get("inputUris") or [])

    @property
    def upstream(self) -> list[dict[str, str]]:
        return list(self.raw.get("upstream") or [])

    def open(self, uri: str) -> Storage:
        return open_storage(uri)

    @cached_property
    def run_storage(self) -> Storage:
        """The resource's output root (progress reports, summaries)."""
        return self.open(self.raw["runUri"])

    @cached_property
    def output(self) -> Storage:
        """This stage's output root; sample outputs are keys under it."""
        return self.open(self.raw["outputUri"])

    @cached_property
    def source(self) -> Storage:
        """Where a first stage's input files are (`SampleRef.source` keys are relative to it)."""
        return self.open(source_root(self.raw))

    def upstream_output(self, name: str | None = None) -> Storage:
        """Output root of an upstream stage (the only one when `name` is omitted)."""
        ups = self.upstream
        match = [u for u in ups if name is None or u["name"] == name]
        if len(match) != 1:
            raise BadInput(f"stage {self.stage!r} has upstream {[u['name'] for u in ups]}; asked for {name!r}")
        return self.open(match[0]["outputUri"])

    def stage_output(self, name: str) -> Storage:
        """Output root of any stage upstream of this one, direct or transitive."""
        for entry in (*self.upstream, *(self.raw.get("ancestors") or [])):
            if entry["name"] == name:
                return self.open(entry["outputUri"])
        known = sorted({e["name"] for e in (*self.upstream, *(self.raw.get("ancestors") or []))})
        raise BadInput(f"stage {self.stage!r} does not run after a stage {name!r} (it runs after {known})")

    def stage_hash(self, name: str) -> str:
        for entry in (*self.upstream, *(self.raw.get("ancestors") or [])):
            if entry["name"] == name:
                return str(entry["configHash"])
        raise BadInput(f"stage {self.stage!r} does not run after a stage {name!r}")

    @cached_property
    def all_samples(self) -> list[SampleRef]:
        try:
            return resolve_samples(self.raw, self.open)
        except InventoryError as exc:
            raise BadInput(str(exc)) from None

    @cached_property
    def samples(self) -> list[SampleRef]:
        """This shard's slice of the stage's sorted samples."""
        start, stop = shard_bounds(len(self.all_samples), self.index, self.shards)
        return self.all_samples[start:stop]

    @cached_property
    def workdir(self) -> Path:
        """Scratch space for this shard (downloads, intermediate files); deleted at exit."""
        return Path(tempfile.mkdtemp(prefix=f"genfab-{self.stage}-{self.index}-"))


def _int_env(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    value = env.get(name)
    if value is None or value == "":
        if default is None:
            raise BadInput(f"environment variable {name} is not set (the stage contract requires it)")
        return default
    try:
        return int(value)
    except ValueError:
        raise BadInput(f"environment variable {name}={value!r} is not an integer") from None


def load_context(env: Mapping[str, str] | None = None) -> StageContext:
    """Read the stage config from `GENFAB_STAGE_CONFIG` (default the mount path) and the shard env."""
    env = dict(os.environ if env is None else env)
    path = Path(env.get(ENV_CONFIG) or CONFIG_PATH)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"stage config {path} does not exist (set {ENV_CONFIG} or mount it)") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"stage config {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or raw.get("contract") != CONTRACT_VERSION:
        raise BadInput(f"stage config {path}: contract version {raw.get('contract') if isinstance(raw, dict) else '?'}"
                       f" is not {CONTRACT_VERSION}; the operator and the stage image disagree")
    missing = [k for k in ("stage", "configHash", "runUri", "outputUri") if k not in raw]
    if missing:
        raise BadInput(f"stage config {path} lacks {', '.join(missing)}")
    index = _int_env(env, ENV_INDEX, 0)
    shards = _int_env(env, ENV_SHARDS, 1)
    try:
        shard_bounds(0, index, shards)
    except ValueError as exc:
        raise BadInput(f"{ENV_INDEX}/{ENV_SHARDS}: {exc}") from None
    return StageContext(raw=raw, index=index, shards=shards, env=env)
