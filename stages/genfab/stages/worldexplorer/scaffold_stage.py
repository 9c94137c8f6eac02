"""Stage `scaffold` (the lab's worldexplorer, stage 1), method `scaffold_gen`: WorldExplorer's eight-view 360° scaffold.

Per sample, at `resolution`² and `fovDegrees`, all cameras at one point, 45° apart in yaw:
1. the cardinal views: 000 is the sample's image (centre-cropped), 002/004/006 are generated from the
   cardinal prompts (`scaffold_prompts`) with FLUX text to image (`genfab.stages.flux.text`);
2. each cardinal view's depth (Depth Pro), so its pixels become points;
3. each in-between view (001/003/005/007) gets its two neighbours' points reprojected
   (`scaffold_geometry.reproject`: colours where they are seen, a hole mask elsewhere);
4. FluxFill inpaints the holes: one candidate (`selection: fast`) or `inpaintCandidates` (`automatic`);
5. `automatic` scores the candidates with CLIP against the neighbours' prompts joined by "and"
   (`clip_select`) and keeps the best; `fast` keeps its only one.

Writes, under `{variant}/index_XXXX/scaffold/`: `final/000.png` … `final/007.png` (the scaffold the
expansion reads), `candidates/<gap>_<k>.png`, `reprojected/<gap>.png` and `masks/<gap>.png` (255 = painted)
per in-between view, and `scaffold.json` (cameras, prompts, per gap the candidates' CLIP scores and the
choice). `selection: manual` writes every candidate and no final in-between view: the resource waits
(condition AwaitingSelection) until a person copies the chosen ones into `final/` or runs
`genfab select`.

`method: single_image` (the seed's default) runs SEVA through its adapter (`seva_adapter`, in the
image `worldexplorer.seva.image`): a 360° sweep of `seva.sweepFrames` views turning in place from
the input image, written to `sweep/NNNN.png`, and for each scaffold view the key frame looking its
way (`keyframes`) copied to `final/`. Without a SEVA image the planner refuses it with one line
saying what to set.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from genfab.api.pipelines.worldexplorer import ScaffoldSettings, candidate_key, final_key, scaffold_refusal
from genfab.inventory.curated import CuratedSetError, curated_input, curated_jobs
from genfab.stages.common.imaging import decode_rgb, encode_png
from genfab.stages.models.base import ModelSet, model_params, open_models, required_models
from genfab.stages.runtime import BadInput, Sample, SampleError, SampleStage, StageContext
from genfab.stages.scene.geometry import intrinsics_from_fov
from genfab.stages.worldexplorer.clip_select import Choice
from genfab.stages.worldexplorer.keyframes import KeyFrameError, key_frames
from genfab.stages.worldexplorer.scaffold_figures import scaffold_figures
from genfab.stages.worldexplorer.scaffold_geometry import (
    CARDINAL,
    GAPS,
    VIEWS,
    cam_T_world,
    gap_prompt,
    neighbours,
    reproject,
    view_name,
    yaw_degrees,
    yaw_pose,
)
from genfab.stages.worldexplorer.scaffold_prompts import NoPrompt, cardinal_prompts
from genfab.stages.worldexplorer.seva_adapter import PosedView

CANDIDATE_SEED_STRIDE = 100
"""Candidate k of in-between view g is seeded with base + 100·g + k (cardinal view v with base + v)."""


def square(rgb: np.ndarray, side: int) -> np.ndarray:
    """The largest centred square of `rgb`, resized to `side`² (area filter when shrinking)."""
    height, width = rgb.shape[:2]
    edge = min(height, width)
    top, left = (height - edge) // 2, (width - edge) // 2
    crop = rgb[top:top + edge, left:left + edge]
    interpolation = cv2.INTER_AREA if edge > side else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(crop, (side, side), interpolation=interpolation))


class Scaffold:
    """What a scaffold worker holds: FLUX text-to-image, the FLUX fill, the depth model and CLIP (or SEVA for
    `single_image`), and the curated set's entries."""

    def __init__(self, settings: ScaffoldSettings, ctx: StageContext, models: ModelSet) -> None:
        self.settings, self.models = settings, models
        from genfab.stages.flux.fill import FluxFill
        from genfab.stages.flux.text import FluxText
        from genfab.stages.scene.depth import DepthPro
        from genfab.stages.worldexplorer.clip_select import ClipScorer

        s = self.settings.scaffold
        why = scaffold_refusal(self.settings)  # the planner says so first; a Pod run by hand gets the same line
        if why:
            raise BadInput(why)
        self.ctx = ctx
        try:
            curated = curated_input(ctx.cfg)
            self.entries = {j.id: j.sample for j in curated_jobs(curated, ctx.open)} if curated else {}
        except CuratedSetError as exc:
            raise BadInput(str(exc)) from None
        if s.method == "single_image":
            from genfab.stages.worldexplorer.seva_adapter import load_seva

            self.seva = load_seva(self.models, self.settings.seva)
            return
        self.generate = self.models.load("generator", s.flux_model, lambda path, placement: FluxText(
            path, placement, s.flux_steps, s.flux_guidance, s.flux_runtime))
        self.fill = self.models.load("inpainter", s.flux_fill_model, lambda path, placement: FluxFill(
            path, placement, s.fill_steps, s.fill_guidance, s.flux_runtime))
        self.depth = self.models.load("depth", s.depth_model,
                                      lambda path, placement: DepthPro(path, placement, s.fov_degrees))
        self.clip = (self.models.load("clip", s.clip_model, ClipScorer) if s.selection == "automatic" else None)

    def process(self, sample: Sample) -> None:
        if self.settings.scaffold.method == "single_image":
            return self.sweep(sample)
        s = self.settings.scaffold
        entry = self.entries.get(sample.id)
        try:
            hints = entry.scaffold if entry is not None else None
            prompts = cardinal_prompts(s.custom_prompts, s.theme, entry.prompt if entry is not None else None,
                                       {int(v): text for v, text in (hints.prompts or {}).items()} if hints else None,
                                       hints.theme if hints else None)
        except NoPrompt as exc:
            raise SampleError("NoPrompt", str(exc)) from None
        side, base = s.resolution, sample.seed(s.seed)
        K = intrinsics_from_fov(side, side, s.fov_degrees)
        views = {0: square(decode_rgb(sample.read_source()), side)}
        started = time.perf_counter()
        for view in CARDINAL[1:]:
            views[view] = self.generate(prompts[view], side, side, seed=base + view)
        sample.timings["generateSeconds"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        depth = {view: self.depth(views[view]).depth for view in CARDINAL}
        sample.timings["depthSeconds"] = round(time.perf_counter() - started, 3)
        prefix = self.ctx.sample_prefix(sample.id)
        gaps: dict[str, Any] = {}
        fill_seconds = 0.0
        for gap in GAPS:
            name = view_name(gap)
            left, right = neighbours(gap)
            seen = reproject([(views[v], depth[v], cam_T_world(v)) for v in (left, right)], K, cam_T_world(gap),
                             (side, side))
            count = 1 if s.selection == "fast" else s.inpaint_candidates
            started = time.perf_counter()
            candidates = [self.fill(seen.rgb, seen.hole, seed=base + CANDIDATE_SEED_STRIDE * gap + k)
                          for k in range(count)]
            fill_seconds += time.perf_counter() - started
            text = gap_prompt(prompts, gap)
            choice = self.clip.choose(candidates, text) if self.clip is not None else Choice(0, ())
            if s.selection != "manual":  # manual: a person copies the chosen candidate into final/
                views[gap] = candidates[choice.best]
            for k, candidate in enumerate(candidates):
                sample.write(prefix + candidate_key(name, k), encode_png(candidate))
            sample.write(f"{prefix}reprojected/{name}.png", encode_png(seen.rgb))
            sample.write(f"{prefix}masks/{name}.png", encode_png(seen.hole))
            gaps[name] = {"neighbours": [view_name(left), view_name(right)], "prompt": text, "candidates": count,
                          "scores": list(choice.scores) or None,
                          "chosen": None if s.selection == "manual" else choice.best,
                          "holeFraction": round(float(seen.hole.mean()), 4)}
        sample.timings["fillSeconds"] = round(fill_seconds, 3)
        for view, rgb in sorted(views.items()):
            sample.write(prefix + final_key(view_name(view)), encode_png(rgb))
        write_record(sample, prefix, s.method, s.selection, side, s.fov_degrees, K, {"gaps": gaps},
                     {v: {"source": _source(v, s.selection), **({"prompt": prompts[v]} if v in CARDINAL else {})}
                      for v in range(VIEWS)}, entry)
        if s.selection == "manual":
            sample.notes.append(f"{len(GAPS)} in-between views await a person's choice of {count} candidates "
                                "each (`genfab select`)")
        sample.params.update(fluxRuntime=self.generate.applied.options, quality=scaffold_figures(gaps),
                             **model_params(self.models))

    def sweep(self, sample: Sample) -> None:
        """`single_image`: SEVA's 360° sweep from the input image, then its key frames."""
        s = self.settings.scaffold
        side, base = s.resolution, sample.seed(s.seed)
        K = intrinsics_from_fov(side, side, s.fov_degrees)
        image = square(decode_rgb(sample.read_source()), side)
        poses = sweep_poses(self.settings.seva.sweep_frames)
        started = time.perf_counter()
        work = Path(tempfile.mkdtemp(dir=self.ctx.workdir))
        generated = self.seva([PosedView(K, poses[0], image)], [PosedView(K, pose) for pose in poses[1:]], base, work)
        sample.timings["sevaSeconds"] = round(time.perf_counter() - started, 3)
        frames = [image, *generated]
        try:
            keys = key_frames(list(poses))
        except KeyFrameError as exc:
            raise SampleError("NoKeyFrame", str(exc)) from None
        prefix = self.ctx.sample_prefix(sample.id)
        for i, frame in enumerate(frames):
            sample.write(f"{prefix}sweep/{i:04d}.png", encode_png(frame))
        for key in keys:
            sample.write(prefix + final_key(view_name(key.view)), encode_png(frames[key.frame]))
        write_record(sample, prefix, s.method, "keyframes", side, s.fov_degrees, K, {"sweepFrames": len(frames)},
                     {key.view: {"source": "input" if key.frame == 0 else "seva", "sweepFrame": key.frame,
                                 "angleDegrees": key.angle_degrees} for key in keys}, self.entries.get(sample.id))
        sample.params.update(sevaRuntime=self.seva.applied, **model_params(self.models))


def sweep_poses(frames: int) -> np.ndarray:
    """(frames, 4, 4): the camera turning a full circle in place from view 000 (frame 0), in the
    scaffold's yaw direction."""
    return np.stack([yaw_pose(360.0 * i / frames) for i in range(frames)])


def write_record(sample: Sample, prefix: str, method: str, selection: str, side: int, fov: float, K: np.ndarray,
                 extra: dict[str, Any], views: dict[int, dict[str, Any]], entry: Any = None) -> None:
    """`scaffold.json`: every view's camera (what the expansion reads), how it was made, and the
    sample's own expansion fields from `metadata.json` (the expansion reads no manifest)."""
    own = entry.expansion if entry is not None else None
    hints = {k: v for k, v in (("trajectory", own.trajectory), ("num_frames", own.num_frames),
                               ("distance", own.distance)) if v is not None} if own is not None else {}
    sample.write_json(prefix + "scaffold.json", {
        "method": method, "selection": selection,
        "resolution": side, "fovDegrees": fov, "K": K.tolist(), **extra,
        **({"expansion": hints} if hints else {}),
        "views": {view_name(v): {"yawDegrees": yaw_degrees(v), "camTWorld": cam_T_world(v).tolist(), **views[v]}
                  for v in range(VIEWS)}})


def _source(view: int, selection: str) -> str:
    """Where a final view comes from (scaffold.json)."""
    if view == 0:
        return "input"
    if view in CARDINAL:
        return "generated"
    return "chosen by a person" if selection == "manual" else "inpainted"


def load(settings: ScaffoldSettings, ctx: StageContext) -> Scaffold:
    models = open_models(ctx)
    with required_models():
        return Scaffold(settings, ctx, models)


SCAFFOLD = SampleStage("scaffold", load, Scaffold.process)
