"""`pipeline_state.json` at the execution folder's root, the file the lab's reference-object tools read: the
completed step numbers, the images each step generated and every failed operation.

genfab's own markers and shard reports drive reuse; this file is written from those reports after
each shard of a reference-object stage stores its final report (`Stage.after_report`), for the
stage itself and every stage before it in the plan (under their current config hashes). A step is
completed when every one of its shards succeeded. Shards finishing together may each write it: each
lists the reports again after writing and writes once more if a report appeared meanwhile, so the
last writer leaves the complete picture."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from genfab.contract.names import report_prefix
from genfab.inventory import ShardReport, read_reports
from genfab.stages.runtime import StageContext

STATE_FILE = "pipeline_state.json"
STEPS: dict[str, tuple[int, str]] = {
    "white-background": (1, ""),
    "perspectives": (2, "02_perspectives/{id}.png"),
    "prompts": (3, "03_prompts/prompts.json"),
    "scenes": (4, "04_dataset/{id}.png"),
    "qwen-augmentation": (5, "05_qwen_augmented_images/{id}.png"),
    "annotation": (6, ""),
    "cv-augmentation": (7, ""),
}
"""Seed step number and the file a committed unit is, relative to the execution folder ("" where a
unit is not one file: the white background is `01_white_background.png`, datasets are listed by id)."""
MERGE_ROUNDS = 5


def build_state(execution: str, reports: Mapping[str, Mapping[int, ShardReport]]) -> dict[str, Any]:
    """The state document from each stage's final shard reports (pure)."""
    completed, generated, failed = [], {}, []
    for stage, by_index in sorted(reports.items(), key=lambda kv: STEPS[kv[0]][0]):
        step, pattern = STEPS[stage]
        shards = {r.shards for r in by_index.values()}
        done = (len(shards) == 1 and len(by_index) == shards.pop()
                and all(r.state == "succeeded" for r in by_index.values()))
        if done:
            completed.append(step)
        ids = sorted({i for r in by_index.values() for i in r.succeeded})
        if stage == "white-background":
            generated[stage] = ["01_white_background.png"] if ids else []
        elif stage == "prompts":
            generated[stage] = [pattern] if ids else []
        else:
            generated[stage] = [pattern.format(id=i) for i in ids] if pattern else ids
        for r in sorted(by_index.values(), key=lambda r: r.index):
            failed += [{"step": step, "stage": stage, "id": f.id, "reason": f.reason, "message": f.message}
                       for f in r.failed]
            if r.state == "failed" and r.message:
                failed.append({"step": step, "stage": stage, "shard": r.index, "reason": "ShardFailed",
                               "message": r.message})
    return {"execution_name": execution, "completed_steps": completed, "generated_images": generated,
            "failed_operations": failed, "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "written_by": "genfab"}


def _stages(ctx: StageContext) -> dict[str, str]:
    """The stages whose reports make the state: this one and those before it, with their hashes."""
    found = {ref.name: ref.config_hash for ref in ctx.cfg.known_stages() if ref.name in STEPS}
    found[ctx.stage] = ctx.config_hash
    return found


def _listing(ctx: StageContext, stages: Mapping[str, str]) -> list[str]:
    run = ctx.run_storage
    return sorted(o.key for name, h in stages.items() for o in run.list(report_prefix(name, h)))


def write_state(ctx: StageContext) -> dict[str, Any]:
    run = ctx.run_storage
    stages = _stages(ctx)
    execution = ctx.cfg.run_uri.rstrip("/").rpartition("/")[2]
    seen: list[str] | None = None
    doc: dict[str, Any] = {}
    for _ in range(MERGE_ROUNDS):
        listing = _listing(ctx, stages)
        if listing == seen:
            break
        seen = listing
        doc = build_state(execution, {name: read_reports(run, name, h) for name, h in stages.items()})
        run.write_bytes(STATE_FILE, json.dumps(doc, indent=2).encode())
    return doc


def state_after_shard(ctx: StageContext, report: ShardReport) -> None:
    """`SampleStage.after_shard` of reference-object's stages: `pipeline_state.json` after every shard."""
    write_state(ctx)

