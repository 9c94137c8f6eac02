"""`pipeline_state.json` at the execution folder's root, in the lab's reference-object script's schema
(`load_state`'s keys), so its `--retry_failed` and `--retry_failed_qwen_augmentations` read it: the
completed step numbers, the input, each step's images and folders, and the failed images and
augmentations in the lab's own entry shapes. genfab adds `failed_operations` (every drop and failed
shard of every step, with its reason), `execution_name`, `updated_at` and `written_by`.

genfab's own markers and shard reports drive reuse; this file is written from those reports after
each shard of a reference-object stage stores its final report (`Stage.after_report`), for the
stage itself and every stage before it in the plan (under their current config hashes). A step is
completed when every one of its shards succeeded. What no report holds (the input image, the object,
the views, the prompts) comes from the stage that knows it, or is carried over from the file as the
previous stage left it. Shards finishing together may each write it: each lists the reports again
after writing and writes once more if a report appeared meanwhile, so the last writer leaves the
complete picture."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from genfab.api.reference_object import SceneGenerationConfig
from genfab.contract.names import report_prefix
from genfab.inventory import ShardReport, read_reports
from genfab.stages.reference_object.units import AUG_RE, SCENE_RE, SceneUnit, perspective_index, scene_seed
from genfab.stages.runtime import StageContext
from genfab.storage.base import StorageError

STATE_FILE = "pipeline_state.json"
STEPS: dict[str, int] = {"white-background": 1, "perspectives": 2, "prompts": 3, "scenes": 4,
                         "qwen-augmentation": 5, "annotation": 6, "cv-augmentation": 7}
"""Each stage's step number in the lab's script."""
WHITE_BACKGROUND = "01_white_background.png"
FOLDERS = {"perspectives": "02_perspectives", "scenes": "04_dataset", "qwen-augmentation": "05_qwen_combined_images",
           "annotation": "06_yolo_dataset", "cv-augmentation": "07_cv_augmented_dataset"}
MERGE_ROUNDS = 5
MAX_ITERATIONS = next(m.le for m in SceneGenerationConfig.model_fields["num_iterations"].metadata if hasattr(m, "le"))
"""The most iterations a spec may ask for: how far a step that does not know `numIterations` looks."""


@dataclass(frozen=True)
class Facts:
    """What the state holds beyond the shard reports: known by the stage that has it, carried over by
    the later ones from the file."""

    input_image: str | None = None
    object_name: str | None = None
    prompts: list[str] = field(default_factory=list)
    iterations: Mapping[str, int] = field(default_factory=dict)
    """A scene id's iteration (its seed is drawn per perspective x prompt x iteration)."""


def _step_done(by_index: Mapping[int, ShardReport]) -> bool:
    shards = {r.shards for r in by_index.values()}
    return len(shards) == 1 and len(by_index) == shards.pop() and all(r.state == "succeeded"
                                                                       for r in by_index.values())


def _ids(by_index: Mapping[int, ShardReport] | None) -> list[str]:
    return sorted({i for r in (by_index or {}).values() for i in r.succeeded})


def _failed(by_index: Mapping[int, ShardReport] | None) -> list[tuple[ShardReport, str, str, str]]:
    """(report, unit id, reason, message) of every failed unit, shard by shard."""
    return [(r, f.id, f.reason, f.message) for r in sorted((by_index or {}).values(), key=lambda r: r.index)
            for f in r.failed]


def _when(report: ShardReport) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(report.updated_at or 0))


def build_state(execution: str, reports: Mapping[str, Mapping[int, ShardReport]], facts: Facts,
                where: Callable[[str], str]) -> dict[str, Any]:
    """The state document (pure): `where` turns a key under the execution folder into the path the lab's
    tools open (a local path for a file:// output, the object's URI otherwise)."""
    completed = sorted(STEPS[s] for s, by_index in reports.items() if by_index and _step_done(by_index))
    failed_operations: list[dict[str, Any]] = []
    for stage, by_index in sorted(reports.items(), key=lambda kv: STEPS[kv[0]]):
        step = STEPS[stage]
        failed_operations += [{"step": step, "stage": stage, "id": uid, "reason": reason, "message": message}
                              for _, uid, reason, message in _failed(by_index)]
        failed_operations += [{"step": step, "stage": stage, "shard": r.index, "reason": "ShardFailed",
                               "message": r.message}
                              for r in sorted(by_index.values(), key=lambda r: r.index)
                              if r.state == "failed" and r.message]
    perspectives = {perspective_index(i): i for i in _ids(reports.get("perspectives"))}
    views = [view_info(i) for i in perspectives.values()]
    failed_images = []
    for _, uid, reason, message in _failed(reports.get("scenes")):
        if (unit := _scene(uid)) is None:
            continue
        failed_images.append({
            "perspective_idx": unit.perspective, "prompt_idx": unit.prompt,
            "iteration": facts.iterations.get(uid), "seed": unit.seed, "filename": f"{uid}.png",
            "perspective_path": where(f"{FOLDERS['perspectives']}/{perspectives[unit.perspective]}.png")
            if unit.perspective in perspectives else None,
            "prompt": facts.prompts[unit.prompt] if unit.prompt < len(facts.prompts) else None,
            "reason": reason, "error": message})
    failed_qwen = []
    for report, uid, reason, message in _failed(reports.get("qwen-augmentation")):
        m = AUG_RE.match(uid)
        failed_qwen.append({
            "original_image": where(f"{FOLDERS['scenes']}/{m['scene']}.png") if m else None,
            "aug_filename": f"{uid}.png", "aug_index": int(m["k"]) if m else None, "prompt": None,
            "timestamp": _when(report), "error_type": "qwen_augmentation_failure", "reason": reason,
            "error": message})
    failed_cv = [{"input_image": uid, "aug_filename": None, "aug_index": None, "timestamp": _when(report),
                  "error": f"{reason}: {message}"} for report, uid, reason, message in _failed(
                      reports.get("cv-augmentation"))]

    def folder(stage: str) -> str | None:
        return where(FOLDERS[stage]) if STEPS[stage] in completed else None

    return {
        "completed_steps": completed,
        "input_image": facts.input_image,
        "object_name": facts.object_name,
        "white_bg_image": where(WHITE_BACKGROUND) if _ids(reports.get("white-background")) else None,
        "perspective_generator": views[0][0] if views else None,
        "perspective_images": [where(f"{FOLDERS['perspectives']}/{i}.png") for i in perspectives.values()],
        "perspective_view_info": [info for _, info in views],
        "prompts": list(facts.prompts),
        "classes": [],  # genfab's step 3 asks its LLM for scene descriptions only
        "generated_images": [where(f"{FOLDERS['scenes']}/{i}.png") for i in _ids(reports.get("scenes"))],
        "failed_images": failed_images,
        "qwen_combined_images_path": folder("qwen-augmentation"),
        "qwen_augmentation_summary": None,
        "failed_qwen_augmentations": failed_qwen,
        "yolo_dataset_path": folder("annotation"),
        "annotation_summary": None,
        "cv_augmented_dataset_path": folder("cv-augmentation"),
        "cv_augmentation_summary": None,
        "failed_cv_augmentations": failed_cv,
        "execution_name": execution,
        "failed_operations": failed_operations,
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "written_by": "genfab",
    }


def _scene(uid: str) -> SceneUnit | None:
    return SceneUnit.parse(uid) if SCENE_RE.match(uid) else None


def scene_iterations(ids: list[str], seed: int, iterations: int) -> dict[str, int]:
    """Each scene id's iteration, found by drawing its perspective x prompt's seeds again (`scene_seed`,
    with the salts `scene_units_of` adds on a repeat)."""
    out: dict[str, int] = {}
    for uid in ids:
        if (unit := _scene(uid)) is None:
            continue
        used: set[int] = set()
        for i in range(iterations):
            salt = 0
            while (drawn := scene_seed(seed, unit.perspective, unit.prompt, i, salt)) in used:
                salt += 1
            used.add(drawn)
            if drawn == unit.seed:
                out[uid] = i
                break
    return out


def view_info(perspective_id: str) -> tuple[str, dict[str, Any]]:
    """The generator and the lab's `perspective_view_info` entry of a perspective, read from its id
    (`views.View.id`, so a custom perspectives stage that names its views so is read too): `view`,
    `elevation` (and `distance`) of a multi-camera view, `azimuth` and `elevation` in degrees of a
    Zero123++ one."""
    az, _, rest = perspective_id.split("_", 2)[-1].partition("__")
    el, _, distance = rest.partition("__")
    if az.startswith("azimuth_") and el.startswith("elevation_"):
        return "zero123", {"azimuth": int(az.removeprefix("azimuth_")),
                           "elevation": int(el.removeprefix("elevation_").replace("minus", "-"))}
    return "qwen_multicamera", {"view": az, "elevation": el, "distance": distance or "medium"}


def _previous(ctx: StageContext) -> dict[str, Any]:
    try:
        doc = json.loads(ctx.run_storage.read_bytes(STATE_FILE)) if ctx.run_storage.exists(STATE_FILE) else {}
    except (StorageError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def facts_of(ctx: StageContext, previous: Mapping[str, Any], scene_reports: Mapping[int, ShardReport] | None,
             stages: Mapping[str, str]) -> Facts:
    """What this stage knows, over what the file held."""
    cfg = ctx.cfg.config

    def carried(key: str, kind: type) -> Any:
        value = previous.get(key)
        return value if isinstance(value, kind) else None

    input_image = carried("input_image", str)
    if ctx.stage in ("white-background", "annotation") and ctx.cfg.input_uris:
        input_image = ctx.cfg.input_uris[0]
    object_name = cfg.get("objectName") if isinstance(cfg.get("objectName"), str) else carried("object_name", str)
    prompts = carried("prompts", list) or []
    if "prompts" in stages:
        try:
            store = ctx.output if ctx.stage == "prompts" else ctx.stage_output("prompts")
            doc = json.loads(store.read_bytes("prompts.json"))
            prompts = [str(p) for p in doc.get("prompts") or []]
        except (StorageError, ValueError, KeyError, AttributeError):
            pass
    iterations = {str(f.get("filename", "")).removesuffix(".png"): f["iteration"]
                  for f in carried("failed_images", list) or []
                  if isinstance(f, dict) and isinstance(f.get("iteration"), int)}
    failed = [uid for _, uid, _, _ in _failed(scene_reports) if uid not in iterations]
    if failed and isinstance(cfg.get("seed"), int):  # every built-in step's settings hold the resource's seed
        iterations = {**iterations, **scene_iterations(failed, cfg["seed"], int(cfg.get("numIterations", 0))
                                                       or MAX_ITERATIONS)}
    return Facts(input_image, object_name, prompts, iterations)


def _stages(ctx: StageContext) -> dict[str, str]:
    """The stages whose reports make the state: this one and those before it, with their hashes."""
    found = {ref.name: ref.config_hash for ref in ctx.cfg.known_stages() if ref.name in STEPS}
    found[ctx.stage] = ctx.config_hash
    return found


def _listing(ctx: StageContext, stages: Mapping[str, str]) -> list[str]:
    run = ctx.run_storage
    return sorted(o.key for name, h in stages.items() for o in run.list(report_prefix(name, h)))


def _where(ctx: StageContext) -> Callable[[str], str]:
    root = getattr(ctx.run_storage, "root", None)
    if root is not None:
        return lambda key: str(root.resolve() / key)
    base = ctx.cfg.run_uri.rstrip("/")
    return lambda key: f"{base}/{key}"


def write_state(ctx: StageContext) -> dict[str, Any]:
    run = ctx.run_storage
    stages = _stages(ctx)
    execution = ctx.cfg.run_uri.rstrip("/").rpartition("/")[2]
    previous = _previous(ctx)
    seen: list[str] | None = None
    doc: dict[str, Any] = {}
    for _ in range(MERGE_ROUNDS):
        listing = _listing(ctx, stages)
        if listing == seen:
            break
        seen = listing
        reports = {name: read_reports(run, name, h) for name, h in stages.items()}
        doc = build_state(execution, reports, facts_of(ctx, previous, reports.get("scenes"), stages), _where(ctx))
        run.write_bytes(STATE_FILE, json.dumps(doc, indent=2).encode())
    return doc


def state_after_shard(ctx: StageContext, report: ShardReport) -> None:
    """`SampleStage.after_shard` of reference-object's stages: `pipeline_state.json` after every shard."""
    write_state(ctx)
