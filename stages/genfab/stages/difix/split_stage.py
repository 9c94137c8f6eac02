"""Stage `split` (the lab's difix document): `manifests/all_samples.jsonl` from every exported scene's triplets
that keep the quality bounds (`difix.quality`), then the leak-free `split_train.jsonl` / `split_test.jsonl`
by `group_id` and `split_summary.json` (`split.py`), whose counts add `quality_dropped`. One result over all
scenes: it runs again when the split settings, the bounds or the set of exported scenes change."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from genfab.api.pipelines.difix import SplitSettings
from genfab.api.quality import QualityGate, declared_values
from genfab.api.reasons import QUALITY_OUT_OF_RANGE
from genfab.inventory import SampleRef
from genfab.stages.difix.export_stage import DROP_COLUMNS, scene_index_key
from genfab.stages.difix.split import split_by_group
from genfab.stages.runtime import Given, Sample, SampleError, SampleStage, given
from genfab.storage.base import Storage, StorageError

MANIFESTS = "manifests"
SPLIT_DIR = "_genfab/difix/split"


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def read_scenes(export: Storage, units: list[SampleRef]) -> list[dict[str, Any]]:
    """Every unit's `scene.json` from the export, in scene order."""
    keys = [scene_index_key(u.id) for u in units]
    try:
        found = export.read_many(keys)
    except StorageError as exc:
        raise SampleError("MissingExport", f"the export's scene index cannot be read ({exc})") from None
    missing = [k for k in keys if k not in found]
    if missing:
        raise SampleError("MissingExport", f"the export has no {missing[0]} (run the export again)")
    return [json.loads(found[k]) for k in keys]


def quality_filter(scenes: list[dict[str, Any]], gate: QualityGate) -> set[str]:
    """Each scene's samples outside a bound moved to its drops (`QualityOutOfRange`, the figure, its value
    and the bound), in place; the ids moved. The split applies it before it divides the samples, and the
    adapter again to list the drops (the same gate, so both see the same triplets)."""
    out: set[str] = set()
    for s in scenes:
        kept = []
        for m in s["samples"]:
            missed = gate.missed(declared_values(m.get("quality")))
            if missed is None:
                kept.append(m)
                continue
            out.add(m["sample_id"])
            s["dropped"].append({**{k: m.get(k, "") for k in DROP_COLUMNS[:8]}, "reason": QUALITY_OUT_OF_RANGE,
                                 "detail": missed})
        s["samples"] = kept
    return out


def split(held: Given[SplitSettings], sample: Sample, units: list[SampleRef]) -> None:
    scenes = read_scenes(held.ctx.stage_output("export"), units)
    quality_dropped = quality_filter(scenes, held.settings.gate)
    metas = sorted((m for s in scenes for m in s["samples"]), key=lambda m: m["sample_id"])
    if not metas:
        reasons = Counter(r["reason"] for s in scenes for r in s["dropped"])
        raise SampleError("NoSamples", "the export kept no sample (dropped: "
                          + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) + ")")
    cfg = held.settings.split
    # testGroups may name a scene too: its whole group is held out (a group never spans both sides)
    scene_groups = {s["scene_name"]: s["group_id"] for s in scenes}
    fixed = tuple(dict.fromkeys(scene_groups.get(g, g) for g in cfg.test_groups or ()))
    split = split_by_group(((m["sample_id"], m["group_id"]) for m in metas), cfg.train_ratio, cfg.seed, fixed)
    split.summary["counts"]["quality_dropped"] = len(quality_dropped)  # beside the split's own counts
    by_id = {m["sample_id"]: m for m in metas}
    sample.write(f"{MANIFESTS}/all_samples.jsonl", jsonl(metas))
    sample.write(f"{MANIFESTS}/split_train.jsonl", jsonl([by_id[i] for i in split.train]))
    sample.write(f"{MANIFESTS}/split_test.jsonl", jsonl([by_id[i] for i in split.test]))
    sample.write(f"{MANIFESTS}/split_summary.json", (json.dumps(split.summary, indent=2) + "\n").encode())
    unknown = split.summary["unknown_test_groups"]
    if unknown:
        sample.notes.append(f"split.testGroups {', '.join(unknown)} match no exported group "
                            f"(groups: {', '.join(sorted({m['group_id'] for m in metas}))})")
    if not split.test or not split.train:
        sample.notes.append(f"one side of the split is empty ({len(split.train)} train, {len(split.test)} test): "
                            "the samples come from a single group")


SPLIT = SampleStage("split", given, make_set=split, marker_dir=SPLIT_DIR)
