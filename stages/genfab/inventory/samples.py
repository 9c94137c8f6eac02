"""Which samples a stage processes. The stage Pods and the executors (local runner, operator) call
the same `resolve_samples`, so the shard count an executor picks and the slice a Pod takes agree:
- a stage that reads the job input processes the files under its first input URI (by suffix,
  optionally only `ids`, at most `limit`), sample id = path without extension; a SceneJob's curated
  set (`input.manifest` or inline `samples`) gives one sample per (index, variant), `{variant}/index_XXXX`
  (`curated`);
- a stage with upstream stages processes the samples that succeeded in every upstream stage
  (with `continueOnError`, only the successful ones flow on), read from their shard reports;
- a stage whose pipeline declares its units (`StageDecl.units`) processes those: a first stage
  whose input is not a folder of files (one unit per exported scene), or a stage that fans out or
  regroups its upstream's samples (reference-object: each perspective x prompt x iteration).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from genfab.contract import StageConfig, report_prefix
from genfab.contract.paths import SAMPLE_ID_RE
from genfab.inventory.curated import CuratedSetError, curated_input, curated_jobs
from genfab.inventory.reports import read_reports
from genfab.storage.base import Storage


class InventoryError(ValueError):
    """The stage's input cannot give a sample list (bad input: retrying does not help)."""


@dataclass(frozen=True)
class SampleRef:
    id: str
    """Sample id: a relative path without extension (`img_001`, `photorealistic/index_0003`)."""
    source: str | None = None
    """Key of the input file under the stage's first input URI, for stages that read the job input."""


def sample_id_for(stem: str) -> str:
    """The sample id of an input file named `stem` (+ extension): the stem itself when it is a valid
    id, else a readable, deterministic one (accents folded to ASCII, other characters as `-`) with
    8 hex characters of the stem's sha256, so two names never share an id. The original name stays
    the sample's `source` (stages record it in their metadata)."""
    if SAMPLE_ID_RE.match(stem):
        return stem
    folded = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", folded).strip("-._")[:110] or "sample"
    # a name's own bytes: a file name that is not UTF-8 is listed with surrogates standing for its bytes
    return f"{slug}-{hashlib.sha256(stem.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused: listing a million objects makes millions of small
    objects and no cycles, and the collector's passes over them were a third of a listing's time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def empty_input(storage: Storage, listed: int, files: int) -> str:
    """Why a folder gave no samples, in words: missing, empty, only subfolders, or no file with a suffix read."""
    root = getattr(storage, "root", None)  # file://: a missing folder is told from an empty one
    if listed == 0:
        if root is not None and not os.path.exists(root):
            return "no such folder"
        return "the folder is empty" if root is not None else "no object under this prefix (missing or empty)"
    if files == 0:
        return f"no file directly in the folder ({listed} in subfolders, which are not read)"
    return f"none of its {files} file(s) has a suffix that is read"


def discover_inputs(storage: Storage, suffixes: Iterable[str], ids: Sequence[str] | None = None,
                    limit: int | None = None) -> list[SampleRef]:
    """Files directly under `storage` with one of `suffixes`, as samples sorted by id: a file's stem
    (`sample_id_for`), or its whole name where another file has the same stem."""
    with collector_paused():
        return _discover(storage, suffixes, ids, limit)


def _discover(storage: Storage, suffixes: Iterable[str], ids: Sequence[str] | None, limit: int | None
              ) -> list[SampleRef]:
    wanted = tuple(s.lower() for s in suffixes)
    by_stem: dict[str, list[str]] = {}
    listed = files = 0
    for obj in storage.list():
        listed += 1
        if "/" in obj.key or obj.key.startswith("."):
            continue  # samples are the files directly under the input folder
        files += 1
        stem, dot, ext = obj.key.rpartition(".")
        if not dot or f".{ext.lower()}" not in wanted:
            continue
        by_stem.setdefault(sample_id_for(stem), []).append(obj.key)
    found: dict[str, SampleRef] = {}
    for stem_id, keys in by_stem.items():
        # `good.png` beside `good.jpg`: each is a sample, named with its extension (`good.png`, `good.jpg`).
        for key in keys:
            sample_id = stem_id if len(keys) == 1 else sample_id_for(key)
            if sample_id in found:
                raise InventoryError(f"two input files share sample id {sample_id!r}: "
                                     f"{found[sample_id].source} and {key}")
            found[sample_id] = SampleRef(sample_id, key)
    if not found:
        raise InventoryError(f"{storage.uri}: {empty_input(storage, listed, files)} (an input is files named "
                             f"*{', *'.join(wanted)} directly in it)")
    if ids is not None:
        missing = sorted(set(ids) - set(found))
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise InventoryError(f"selection.ids: no input file under {storage.uri} for {shown} "
                                 f"(looked for {', '.join(wanted)})")
        found = {i: found[i] for i in ids}
    refs = [found[k] for k in sorted(found)]
    return refs[:limit] if limit is not None else refs


def upstream_succeeded(cfg: StageConfig, open_fn: Callable[[str], Storage], name: str) -> set[str]:
    """The samples upstream stage `name` committed (its final shard reports)."""
    up = next((u for u in cfg.upstream if u.name == name), None)
    if up is None:
        raise InventoryError(f"stage {cfg.stage!r} does not run after {name!r} "
                             f"(its upstream: {[u.name for u in cfg.upstream]})")
    run = open_fn(cfg.run_uri)
    reports = read_reports(run, up.name, up.config_hash)
    if not reports or any(r.state == "running" for r in reports.values()):
        raise InventoryError(f"upstream stage {up.name!r} has not finished with config "
                             f"{up.config_hash[:10]} (no final shard reports under "
                             f"{run.child(report_prefix(up.name, up.config_hash))})")
    return {i for r in reports.values() for i in r.succeeded}


def resolve_samples(cfg: StageConfig, open_fn: Callable[[str], Storage]) -> list[SampleRef]:
    """The full, sorted sample list of a stage (every shard takes a slice of it)."""
    declared = declared_units(cfg)
    if declared is not None:  # a first stage whose input is not a file folder, or a fan-out stage
        return declared(cfg, open_fn)
    if cfg.upstream:
        common: set[str] | None = None
        for up in cfg.upstream:
            ids = upstream_succeeded(cfg, open_fn, up.name)
            common = ids if common is None else common & ids
        return [SampleRef(i) for i in sorted(common or ())]
    if not cfg.input_uris:
        return []
    return input_samples(cfg, open_fn)[1]


Units = Callable[[StageConfig, Callable[[str], Storage]], list[SampleRef]]


def declared_units(cfg: StageConfig) -> Units | None:
    """The unit listing the stage's pipeline declares for it (`StageDecl.units`), or None."""
    from genfab.api.pipeline import pipelines

    found = pipelines().get(cfg.pipeline)
    if found is None or cfg.stage not in found.stage_names:
        return None
    path = found.stage(cfg.stage).units
    if path is None:
        return None
    module, _, attr = path.partition(":")
    units: Units = getattr(importlib.import_module(module), attr)
    return units


def input_samples(cfg: StageConfig, open_fn: Callable[[str], Storage]) -> tuple[Storage, list[SampleRef]]:
    """The job input's samples (the files of a folder, a single file, or a SceneJob's curated set) and
    the storage their `source` keys are relative to."""
    try:
        curated = curated_input(cfg)
        if curated is not None:
            return open_fn(curated.root), [SampleRef(j.id, j.image) for j in curated_jobs(curated, open_fn)]
    except CuratedSetError as exc:
        raise InventoryError(str(exc)) from None
    root = source_root(cfg)
    storage = open_fn(root)
    if root != cfg.input_uris[0]:  # a single input file
        name = cfg.input_uris[0].rstrip("/").rpartition("/")[2]
        return storage, [SampleRef(sample_id_for(name.rpartition(".")[0]), name)]
    return storage, discover_inputs(storage, cfg.selection.suffixes, cfg.selection.ids, cfg.selection.limit)


def source_root(cfg: StageConfig) -> str:
    """The URI that `SampleRef.source` keys are relative to: the first input, or its folder when
    the input is a single file (a SceneJob's `image`), or a curated set's dataset root."""
    try:
        curated = curated_input(cfg)
    except CuratedSetError as exc:
        raise InventoryError(str(exc)) from None
    if curated is not None:
        return curated.root
    first = cfg.input_uris[0]
    suffixes = tuple(s.lower() for s in cfg.selection.suffixes)
    parent, _, name = first.rstrip("/").rpartition("/")
    return parent if suffixes and name.lower().endswith(suffixes) and "://" in parent else first
