"""Which samples a stage processes, and the shard reports that carry progress to the executors.

The stage Pods and the executors (local runner, operator) call the same `resolve_samples`, so the
shard count an executor picks and the slice a Pod takes always agree:
- a stage that reads the job input processes the files under its first input URI (by suffix,
  optionally only `ids`, at most `limit`), sample id = path without extension;
- a stage with upstream stages processes the samples that succeeded in every upstream stage
  (with `continueOnError`, only the successful ones flow on), read from their shard reports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from genfab.api.types import check_sample_id
from genfab.planner.contract import report_key, report_prefix
from genfab.storage.base import Storage, StorageError

ShardState = Literal["running", "succeeded", "failed"]


class InventoryError(ValueError):
    """The stage's input cannot give a sample list (bad input: retrying does not help)."""


@dataclass(frozen=True)
class SampleRef:
    id: str
    """Sample id: a relative path without extension (`img_001`, `photorealistic/index_0003`)."""
    source: str | None = None
    """Key of the input file under the stage's first input URI, for stages that read the job input."""


@dataclass
class FailedSample:
    id: str
    reason: str
    """Short machine-readable cause (`SampleError`, `DecodeError`, `Timeout`, ...)."""
    message: str = ""


@dataclass
class ShardReport:
    """What one shard has done so far. Written by the Pod while it runs and once at the end."""

    stage: str
    config_hash: str
    index: int
    shards: int
    state: ShardState = "running"
    total: int = 0
    succeeded: list[str] = field(default_factory=list)
    """Committed samples, including `reused` ones (committed earlier with the same config hash)."""
    reused: int = 0
    failed: list[FailedSample] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    model_load_seconds: float | None = None
    message: str = ""
    """Why the shard stopped, when it failed as a whole."""

    @property
    def done(self) -> int:
        return len(self.succeeded) + len(self.failed)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ShardReport:
        data = json.loads(raw)
        data["failed"] = [FailedSample(**f) for f in data.get("failed", [])]
        return cls(**data)


def write_report(run: Storage, report: ShardReport) -> None:
    report.updated_at = time.time()
    run.write_bytes(report_key(report.stage, report.config_hash, report.index), report.to_json())


def read_reports(run: Storage, stage: str, config_hash: str) -> dict[int, ShardReport]:
    """Every shard report of `stage` at `config_hash`, by index (unreadable ones are skipped)."""
    reports: dict[int, ShardReport] = {}
    for obj in run.list(report_prefix(stage, config_hash)):
        try:
            report = ShardReport.from_json(run.read_bytes(obj.key))
        except (StorageError, ValueError, TypeError):
            continue  # being rewritten or foreign: the next poll sees it
        reports[report.index] = report
    return reports


def clear_reports(run: Storage, stage: str, config_hash: str) -> int:
    return run.delete_prefix(report_prefix(stage, config_hash))


def discover_inputs(storage: Storage, suffixes: Iterable[str], ids: list[str] | None = None,
                    limit: int | None = None) -> list[SampleRef]:
    """Files directly under `storage` with one of `suffixes`, as samples sorted by id."""
    wanted = tuple(s.lower() for s in suffixes)
    found: dict[str, SampleRef] = {}
    for obj in storage.list():
        if "/" in obj.key or obj.key.startswith("."):
            continue  # samples are the files directly under the input folder
        stem, dot, ext = obj.key.rpartition(".")
        if not dot or f".{ext.lower()}" not in wanted:
            continue
        try:
            sample_id = check_sample_id(stem)
        except ValueError as exc:
            raise InventoryError(f"input file {storage.child(obj.key)} cannot be a sample: {exc}") from None
        if sample_id in found:
            raise InventoryError(f"two input files share sample id {sample_id!r}: "
                                 f"{found[sample_id].source} and {obj.key}")
        found[sample_id] = SampleRef(sample_id, obj.key)
    if ids is not None:
        missing = sorted(set(ids) - set(found))
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise InventoryError(f"selection.ids: no input file under {storage.uri} for {shown} "
                                 f"(looked for {', '.join(wanted)})")
        found = {i: found[i] for i in ids}
    refs = [found[k] for k in sorted(found)]
    return refs[:limit] if limit is not None else refs


def resolve_samples(stage_cfg: dict[str, Any], open_fn: Callable[[str], Storage]) -> list[SampleRef]:
    """The full, sorted sample list of a stage (every shard takes a slice of it)."""
    upstream = stage_cfg.get("upstream") or []
    if upstream:
        run = open_fn(stage_cfg["runUri"])
        common: set[str] | None = None
        for up in upstream:
            reports = read_reports(run, up["name"], up["configHash"])
            if not reports or any(r.state == "running" for r in reports.values()):
                raise InventoryError(f"upstream stage {up['name']!r} has not finished with config "
                                     f"{up['configHash'][:10]} (no final shard reports under "
                                     f"{run.child(report_prefix(up['name'], up['configHash']))})")
            ids = {i for r in reports.values() for i in r.succeeded}
            common = ids if common is None else common & ids
        return [SampleRef(i) for i in sorted(common or ())]
    inputs = stage_cfg.get("inputUris") or []
    if not inputs:
        return []
    selection = stage_cfg.get("selection") or {}
    root = source_root(stage_cfg)
    if root != inputs[0]:  # a single input file
        name = inputs[0].rstrip("/").rpartition("/")[2]
        return [SampleRef(check_sample_id(name.rpartition(".")[0]), name)]
    return discover_inputs(open_fn(root), selection.get("suffixes", ()), selection.get("ids"), selection.get("limit"))


def source_root(stage_cfg: dict[str, Any]) -> str:
    """The URI that `SampleRef.source` keys are relative to: the first input, or its folder when
    the input is a single file (a SceneJob's `image`)."""
    first = str(stage_cfg["inputUris"][0])
    suffixes = tuple(s.lower() for s in (stage_cfg.get("selection") or {}).get("suffixes", ()))
    parent, _, name = first.rstrip("/").rpartition("/")
    return parent if suffixes and name.lower().endswith(suffixes) and "://" in parent else first
