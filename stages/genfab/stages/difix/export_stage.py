"""Stage `export` (the lab's difix document): one unit per source scene; every triplet the settings select becomes
`samples/<sample_id>/{image.png, target_image.<fmt>, ref_image.<fmt>, meta.json}`.

1. The scene's files come from one listing (`layouts`), its cameras from its camera file (`cameras`).
2. `triplets.plan_scene` picks targets and references and drops what is missing, before any read.
3. Frames are exported in a thread pool: each file read once, decoded once (the check), copied as it is
   when already in the wanted format; masks checked against `minMaskFraction`; each kept triplet's
   quality figures (`triplet_figures`) go into its meta.json.
4. Renders come from the renders folder, or are rendered here from the frame's 3DGS PLY at the target
   cameras on the GPU (`renders: ply`).
5. `_genfab/difix/export/<scene>/scene.json` lists the scene's samples (their meta.json) and drops:
   split and adapter read it, and it is what the unit's marker checks. Samples the scene had in an
   earlier run but not in this one are deleted, so `samples/` always matches the manifests.
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from genfab.api.difix import DifixSource
from genfab.api.pipelines.difix import ExportSettings
from genfab.stages.difix.cameras import pose_distance, read_cameras
from genfab.stages.difix.files import Unreadable, as_format, decode, mask_fraction
from genfab.stages.difix.ids import GroupError, group_id, meta, sample_id
from genfab.stages.difix.layouts import SceneRef, SourceError, layout_for
from genfab.stages.difix.scene_export import SceneExport
from genfab.stages.difix.triplet_figures import triplet_figures
from genfab.stages.difix.triplets import Drop, Selection, Triplet, plan_scene, skip_set
from genfab.stages.runtime import BadInput, Sample, SampleError, SampleStage, StageContext
from genfab.stages.runtime.parallel import cpu_workers
from genfab.storage.base import Storage, StorageError

EXPORT_DIR = "_genfab/difix/export"
"""Per scene: the marker and `scene.json` (relative to the experiment root)."""
DROP_COLUMNS = ("sample_id", "dataset", "scene_name", "group_id", "target_cam_id", "reference_cam_id",
                "target_fname", "reference_fname", "reason", "detail")


def scene_index_key(scene_name: str) -> str:
    return f"{EXPORT_DIR}/{scene_name}/scene.json"


@dataclass(frozen=True)
class Exporter:
    """What an export worker holds: its settings, its context, its sources by name and the threads that
    export a scene's frames side by side."""

    settings: ExportSettings
    ctx: StageContext
    sources: dict[str, DifixSource]
    pool: ThreadPoolExecutor


def load(settings: ExportSettings, ctx: StageContext) -> Exporter:
    return Exporter(settings, ctx, {s.name: s for s in settings.sources},
                    ThreadPoolExecutor(max(4, 2 * cpu_workers(ctx.env)), thread_name_prefix="genfab-export"))


def close(exporter: Exporter) -> None:
    exporter.pool.shutdown()


# 1-2: the scene and its candidates
def scene_job(ex: Exporter, sample: Sample) -> tuple[SceneExport, list[Triplet], list[Drop]]:
    source_name, _, key = (sample.ref.source or "").partition("/")
    source = ex.sources.get(source_name)
    if source is None:
        raise BadInput(f"unit {sample.id} names source {source_name!r}, which the config does not have")
    storage = ex.ctx.open(source.uri)
    renders = ex.ctx.open(source.renders_uri) if source.renders_uri else None
    scene = SceneRef(key, sample.id)
    ply = source.renders == "ply"
    try:
        files = layout_for(source.dataset).files(storage, scene, renders, ply)
        cameras = read_cameras(storage, files)
        group = group_id(scene.name, source.effective_group_by(), source.group_pattern)
    except (SourceError, GroupError) as exc:
        raise SampleError("BadScene", str(exc)) from None
    skip_csv = source_text(storage, f"{key}/{files.skip_key}") if files.skip_key else None
    skipped = skip_set(source.skip_frames or (), scene.name, source.name, skip_csv)
    rv = ex.settings.reference_view
    if rv.strategy == "fixed-camera" and rv.reference_cam_id not in cameras:
        raise SampleError("BadScene", f"referenceView.referenceCamId {rv.reference_cam_id} is not a camera of "
                                      f"scene {scene.name} (cameras: {', '.join(map(str, sorted(cameras)))})")
    sel = Selection(source.target_cameras, source.frame_stride, rv.strategy, rv.reference_cam_id,
                    rv.frame_offset, rv.seed)

    def has_render(cam: int, frame: str) -> bool:
        if ply:
            return frame in files.plys or "*" in files.plys
        return (cam, frame) in files.renders
    triplets, drops = plan_scene(scene.name, cameras, files.images, has_render, skipped, sel,
                                 lambda a, b: pose_distance(cameras[a], cameras[b]))
    job = SceneExport(source, storage, renders, files, cameras, group, ex.settings.image_format,
                   source.min_mask_fraction)
    return job, triplets, drops


# 3-5
def export(ex: Exporter, sample: Sample) -> None:
    job, triplets, drops = scene_job(ex, sample)
    if job.source.renders == "ply" and triplets:
        render_plys(ex, job, triplets)
    by_frame: dict[str, list[Triplet]] = {}
    for t in triplets:
        by_frame.setdefault(t.frame, []).append(t)
    results = list(ex.pool.map(lambda ts: export_frame(ex.ctx.output, job, ts), by_frame.values()))
    metas = [m for kept, _, _ in results for m in kept]
    dropped = [drop_row(job, d) for d in drops] + [row for _, lost, _ in results for row in lost]
    written = sum(n for _, _, n in results)
    previous = previous_samples(ex, sample.id)
    index = {
        "scene_name": sample.id, "source": job.source.name, "dataset": job.source.dataset,
        "scene_key": job.files.scene.key, "group_id": job.group, "cameras": sorted(job.cameras),
        "frames": len(job.files.frames), "samples": sorted(metas, key=lambda m: m["sample_id"]),
        "dropped": sorted(dropped, key=lambda r: (r["target_fname"], r["target_cam_id"], r["reason"])),
    }
    stale = sorted(previous - {m["sample_id"] for m in metas})
    for sid in stale:
        ex.ctx.output.delete_prefix(f"samples/{sid}/")
    sample.write(scene_index_key(sample.id), json.dumps(index, indent=1).encode())
    reasons = Counter(r["reason"] for r in dropped)
    sample.params.update({"samples": len(metas), "bytes": written, "dropped": dict(sorted(reasons.items())),
                          # each triplet's figures (also in its meta.json): the shard's histograms and table
                          "quality": {m["sample_id"]: m["quality"] for m in metas}})
    why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
    if not metas:
        sample.notes.append(f"no sample kept ({why})")
    elif dropped:  # the scene succeeded, but not every frame made a sample: say so where users look
        sample.notes.append(f"{len(metas)} samples kept, {len(dropped)} dropped ({why}); see "
                            f"{scene_index_key(sample.id)}")


def previous_samples(ex: Exporter, scene: str) -> set[str]:
    """Sample ids an earlier export of this scene wrote (to delete those this run no longer makes)."""
    try:
        doc = json.loads(ex.ctx.output.read_bytes(scene_index_key(scene)))
        return {str(m["sample_id"]) for m in doc.get("samples", [])}
    except (StorageError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def render_plys(ex: Exporter, job: SceneExport, triplets: list[Triplet]) -> None:
    """`renders: ply`: each needed (camera, frame) rendered from the frame's PLY on the GPU."""
    from genfab.stages.difix.ply_renders import render_targets

    try:
        job.rendered = render_targets(job, triplets, ex.ctx.workdir)
    except RuntimeError as exc:
        if "CUDA" in str(exc) or "cuda" in str(exc):
            raise BadInput(f"sources[{job.source.name}].renders: ply renders with gsplat and needs a CUDA GPU "
                           f"({exc}); give the export stage a GPU or use renders: folder") from None
        raise


EXPORT = SampleStage("export", load, export, marker_dir=EXPORT_DIR, close=close)


def source_text(storage: Storage, key: str) -> str | None:
    try:
        return storage.read_bytes(key).decode("utf-8", "replace")
    except StorageError:
        return None


def drop_row(job: SceneExport, d: Drop) -> dict[str, Any]:
    scene = job.files.scene.name
    sid = sample_id(scene, d.target_cam, d.reference_cam, d.frame, d.reference_frame) \
        if d.reference_cam is not None and d.reference_frame is not None else ""
    return {"sample_id": sid, "dataset": job.source.dataset, "scene_name": scene, "group_id": job.group,
            "target_cam_id": d.target_cam, "reference_cam_id": "" if d.reference_cam is None else d.reference_cam,
            "target_fname": d.frame, "reference_fname": d.reference_frame or "", "reason": d.reason,
            "detail": d.detail}


def export_frame(output: Storage, job: SceneExport, triplets: list[Triplet]) -> tuple[list[dict[str, Any]],
                                                                                  list[dict[str, Any]], int]:
    """One frame's triplets (a thread-pool task): (metas kept, drop rows, bytes written)."""
    loaded: dict[str, Any] = {}

    def load(key: str) -> tuple[bytes, Any]:
        """A source file (key under the source URI), read and decoded once per frame task."""
        if key not in loaded:
            try:
                raw = job.storage.read_bytes(key)
                loaded[key] = (raw, decode(raw, key))
            except (Unreadable, StorageError) as exc:
                loaded[key] = exc
        got = loaded[key]
        if isinstance(got, Exception):
            raise got
        return got  # type: ignore[no-any-return]

    kept: list[dict[str, Any]] = []
    lost: list[dict[str, Any]] = []
    written = 0
    for t in triplets:
        def dropped(reason: str, detail: str, t: Triplet = t) -> None:
            lost.append(drop_row(job, Drop(t.target_cam, t.frame, t.reference_cam, t.reference_frame, reason, detail)))
        tkey, rkey = (t.target_cam, t.frame), (t.reference_cam, t.reference_frame)
        try:
            target_raw, target_px = load(job.source_key(job.files.images[tkey]))
            render_raw, render_source = job.render_bytes(tkey)
            render_px = decode(render_raw, render_source)
            ref_raw, ref_px = load(job.source_key(job.files.images[rkey]))
        except Unreadable as exc:  # this triplet only: the scene's others go on
            dropped(exc.reason, str(exc))
            continue
        except StorageError as exc:
            dropped("unreadable", str(exc))
            continue
        if render_px.shape[:2] != target_px.shape[:2]:
            dropped("size_mismatch", f"render {render_px.shape[1]}x{render_px.shape[0]} vs ground truth "
                                     f"{target_px.shape[1]}x{target_px.shape[0]}")
            continue
        fractions: dict[str, float] = {}
        if job.min_mask > 0:
            missing = [k for k in (tkey, rkey) if k not in job.files.masks]
            if missing:
                dropped("missing_mask", "no mask of " + ", ".join(f"camera {c} at frame {f}" for c, f in missing))
                continue
            try:
                for role, k in (("target", tkey), ("reference", rkey)):
                    fractions[role] = mask_fraction(load(job.source_key(job.files.masks[k]))[1])
            except Unreadable as exc:
                dropped(exc.reason, str(exc))
                continue
            except StorageError as exc:
                dropped("unreadable", str(exc))
                continue
            low = {r: f for r, f in fractions.items() if f < job.min_mask}
            if low:
                dropped("masks_below_threshold", ", ".join(f"{r} mask covers {f:.4f}" for r, f in low.items())
                        + f" (< minMaskFraction {job.min_mask})")
                continue
        provenance: dict[str, Any] = {
            "source": job.source.name, "scene_key": job.files.scene.key,
            "target_image": job.source_key(job.files.images[tkey]), "render": render_source,
            "ref_image": job.source_key(job.files.images[rkey])}
        if fractions:
            provenance["mask_fraction"] = fractions
        m = meta(job.source.dataset, job.files.scene.name, job.group, t.target_cam, t.reference_cam, t.frame,
                 t.reference_frame, job.image_format, provenance)
        m["quality"] = triplet_figures(render_px, target_px,
                                       pose_distance(job.cameras[t.target_cam], job.cameras[t.reference_cam])[1])
        images = {"image": as_format(render_raw, render_px, "png"),
                  "target_image": as_format(target_raw, target_px, job.image_format),
                  "ref_image": as_format(ref_raw, ref_px, job.image_format)}
        converted = {role: note for role, (_, note) in images.items() if note}
        if converted:  # said per file: what Difix3D reads is 8-bit RGB, the source was not
            m["provenance"]["converted"] = converted
        files = {m[f"{role}_path"]: data for role, (data, _) in images.items()}
        files[f"samples/{m['sample_id']}/meta.json"] = (json.dumps(m, indent=2) + "\n").encode()
        for key, data in files.items():
            output.write_bytes(key, data)
            written += len(data)
        kept.append(m)
    return kept, lost, written
