"""Stage `adapter` (the lab's difix document): `difix/data.json` for Difix3D's `train_difix.py` (the split's train and
test samples, paths as `paths` says) and `meta/`: `generation_config.yaml` (experiment-global settings
only), `generation_stats.json` (coverage per dataset, scene and group) and `dropped_samples.csv`.
Triplets outside a `difix.quality` bound are in none of the split's manifests (the split applies
`quality_filter`), so not in `data.json` either; the adapter lists them in `dropped_samples.csv` with
`QualityOutOfRange`, and `generation_config.yaml` records the bounds applied.
Nothing in them depends on time or order of work: the same spec and sources give the same bytes."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from genfab.api.pipelines.difix import AdapterSettings
from genfab.inventory import SampleRef
from genfab.stages.difix.adapter import data_json
from genfab.stages.difix.export_stage import DROP_COLUMNS
from genfab.stages.difix.split_stage import MANIFESTS, quality_filter, read_scenes
from genfab.stages.runtime import BadInput, Sample, SampleError, SampleStage, StageContext
from genfab.storage.base import StorageError

ADAPTER_DIR = "_genfab/difix/adapter"


def global_config(settings: AdapterSettings) -> dict[str, Any]:
    """The experiment-global generation settings: the difix block without per-scene coverage fields."""
    doc: dict[str, Any] = settings.difix.model_dump(by_alias=True, mode="json", exclude_none=True)
    for source in doc["sources"]:
        source.pop("scenes", None)  # coverage: generation_stats.json and the manifests say which scenes
    # the bounds applied (the spec's over the figures' defaults), not the spec's own `quality` alone
    doc["quality"] = {name: bound.model_dump(mode="json", exclude_none=True)
                      for name, bound in sorted(settings.gate.bounds.items())}
    return doc


def coverage(scenes: list[dict[str, Any]], train: set[str], test: set[str]) -> dict[str, Any]:
    """`generation_stats.json`: samples, train/test and drops per dataset, scene and group."""
    def empty() -> dict[str, Any]:
        return {"samples": 0, "train": 0, "test": 0, "dropped": 0, "dropped_by_reason": Counter(), "scenes": set()}
    levels: dict[str, dict[str, dict[str, Any]]] = {"datasets": {}, "scenes": {}, "groups": {}}
    total = empty()
    for s in scenes:
        for name, key in (("datasets", s["dataset"]), ("scenes", s["scene_name"]), ("groups", s["group_id"])):
            entry = levels[name].setdefault(key, empty())
            for row in (entry, total) if name == "datasets" else (entry,):
                row["scenes"].add(s["scene_name"])
                row["samples"] += len(s["samples"])
                row["train"] += sum(m["sample_id"] in train for m in s["samples"])
                row["test"] += sum(m["sample_id"] in test for m in s["samples"])
                row["dropped"] += len(s["dropped"])
                row["dropped_by_reason"].update(r["reason"] for r in s["dropped"])

    def plain(row: dict[str, Any]) -> dict[str, Any]:
        reasons = dict(sorted(row["dropped_by_reason"].items()))
        return {**row, "scenes": len(row["scenes"]), "dropped_by_reason": reasons}
    return {"total": plain(total), **{name: {k: plain(v) for k, v in sorted(rows.items())}
                                      for name, rows in levels.items()}}


def dropped_csv(scenes: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=DROP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for s in scenes:
        writer.writerows(s["dropped"])
    return out.getvalue().encode()


@dataclass(frozen=True)
class Adapting:
    """What the adapter holds: its settings, its context and, for a file:// run, the local folder its
    absolute paths start from."""

    settings: AdapterSettings
    ctx: StageContext
    local_root: Path | None


def load(settings: AdapterSettings, ctx: StageContext) -> Adapting:
    root = getattr(ctx.run_storage, "root", None)
    local_root = root.resolve() if root is not None else None
    if settings.difix.paths == "absolute" and local_root is None:
        raise BadInput(f"difix.paths: absolute needs a file:// output (the trainer opens local paths), not "
                       f"{ctx.cfg.run_uri}; use paths: prefix with the mount path training Pods see")
    return Adapting(settings, ctx, local_root)


def adapt(held: Adapting, sample: Sample, units: list[SampleRef]) -> None:
    scenes = read_scenes(held.ctx.stage_output("export"), units)
    split = held.ctx.stage_output("split")
    try:
        sides = {side: [json.loads(line) for line in split.read_bytes(f"{MANIFESTS}/split_{side}.jsonl")
                        .splitlines() if line.strip()] for side in ("train", "test")}
    except (StorageError, ValueError) as exc:
        raise SampleError("MissingSplit", f"the split manifests cannot be read ({exc})") from None
    dx = held.settings.difix
    quality_filter(scenes, held.settings.gate)  # the split's drops, for the CSV and the stats
    metas = {m["sample_id"]: m for side in sides.values() for m in side}
    train = {m["sample_id"] for m in sides["train"]}
    test = {m["sample_id"] for m in sides["test"]}
    doc = data_json(metas, train, test, dx.prompt, dx.paths, dx.path_prefix,
                    str(held.local_root) if held.local_root is not None else None)
    sample.write("difix/data.json", (json.dumps(doc, indent=2) + "\n").encode())
    sample.write("meta/generation_config.yaml",
                 yaml.safe_dump(global_config(held.settings), sort_keys=True, allow_unicode=True).encode())
    sample.write("meta/generation_stats.json",
                 (json.dumps(coverage(scenes, train, test), indent=2, sort_keys=True) + "\n").encode())
    sample.write("meta/dropped_samples.csv", dropped_csv(scenes))


ADAPTER = SampleStage("adapter", load, make_set=adapt, marker_dir=ADAPTER_DIR)
