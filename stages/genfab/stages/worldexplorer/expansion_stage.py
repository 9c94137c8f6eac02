"""Stage `expansion` (the lab's worldexplorer stage 2, `skip_3dgs=True`): frames along a camera trajectory through the
scaffold, and their geometry, written as `img2trajvid/` for stage 3.

1. For the walk (below), the scaffold's eight final views (`{sample}/scaffold/final/`, cameras from
   `scaffold.json`) become a Gaussian scene: view 000 at its Depth Pro depth, each next view's depth
   aligned to what the scene already shows (vistadream's affine + smooth alignment) and only its unseen
   pixels added, trained `iterations` steps. On the lab's path (SEVA's frames, VGGT's points) nothing
   reads that scene: only view 000's depth is predicted, for the trajectory's scale.
2. The trajectory (`trajectories.scaffold_trajectory`, scaled by the median depth seen from view 000)
   is walked frame by frame. Frames come from
   - SEVA (`img2trajvid`, every frame generated from the eight views) with `expansion.method: seva`
     (the default when `worldexplorer.seva.image` is set): with VGGT's geometry the frames are written
     as SEVA made them; with `geometry: scene` each is depth-aligned and added like a scaffold view;
   - with `walk` (the default otherwise) genfab's built-in walk (vistadream's coarse machinery): the
     scene is rendered at the frame, a render with at least `fillMinHoleRatio` holes is inpainted
     with FluxFill, its depth predicted, aligned and added, and the scene trained `iterations`
     steps; frames with fewer holes are rendered from the final scene.
3. Geometry for 3DGS: VGGT on every frame (points above the confidence quantile, moved into the scene's
   frame by the similarity of its cameras to the known ones) with `expansion.geometry: vggt` (the
   default when `worldexplorer.vggt.image` is set); with `scene` the scene's own points, i.e. every
   frame's aligned metric depth at its known pose. A method asked for without its image is refused
   at plan time (`expansion_refusal`).

Writes `{sample}/scenes/img2trajvid/` (see `img2trajvid`) and `{sample}/scenes/expansion.json` (the
frames' sources and hole ratios, fills, seconds, generator and geometry used).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from genfab.api.errors import field_errors
from genfab.api.gaussians import GaussiansConfig
from genfab.api.pipelines.worldexplorer import ExpansionSettings, final_key
from genfab.api.scenejob import ExpansionConfig
from genfab.stages.common.imaging import decode_rgb, encode_png, to_uint8
from genfab.stages.models.base import ModelSet, model_params, open_models, required_models
from genfab.stages.models.cuda import require_cuda
from genfab.stages.runtime import Sample, SampleError, SampleStage, StageContext
from genfab.stages.scene.align import align_depth
from genfab.stages.scene.frames import Frame, masks_from_depth
from genfab.stages.scene.growing import scene_scale
from genfab.stages.scene.io import stage_prefix
from genfab.stages.worldexplorer.img2trajvid import FOLDER, TrajFrame, write_img2trajvid
from genfab.stages.worldexplorer.scaffold_geometry import VIEWS, view_name
from genfab.stages.worldexplorer.seva_adapter import PosedView
from genfab.stages.worldexplorer.trajectories import scaffold_trajectory

if TYPE_CHECKING:
    from genfab.stages.scene.depth import DepthPredictor
    from genfab.stages.scene.growing import GrowingScene

FILL_SEED_OFFSET = 10_000
"""Trajectory frame i is filled with seed base + 10000 + i (the scaffold's seeds stay below)."""

Paint = Callable[[int, np.ndarray, np.ndarray], "np.ndarray | None"]
"""(frame index, rendered uint8, holes) -> the frame's new image, or None to keep the render."""


def sample_expansion(base: ExpansionConfig, hints: dict[str, Any] | None, where: str) -> ExpansionConfig:
    """`worldexplorer.expansion` with the sample's own `expansion` fields of `metadata.json` (recorded
    in its `scaffold.json`) in place of the block's, held to the block's bounds."""
    if not hints:
        return base
    try:
        return ExpansionConfig.model_validate({**base.model_dump(by_alias=True), **{
            to_camel(k): v for k, v in hints.items()}})
    except ValidationError as exc:
        raise SampleError("BadInput", f"{where}: the sample's expansion fields in metadata.json: "
                                      f"{'; '.join(str(e) for e in field_errors(exc))}") from None


def read_scaffold(sample: Sample) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """(views 000-007, K, world-to-camera poses) of the sample's final scaffold."""
    prefix = stage_prefix(sample.id, "scaffold")
    try:
        meta = json.loads(sample.read_upstream(prefix + "scaffold.json", "scaffold"))
        views = [decode_rgb(sample.read_upstream(prefix + final_key(view_name(v)), "scaffold")) for v in range(VIEWS)]
        K = np.asarray(meta["K"], np.float64)
        poses = [np.asarray(meta["views"][view_name(v)]["camTWorld"], np.float64) for v in range(VIEWS)]
    except FileNotFoundError as exc:
        raise SampleError("ScaffoldIncomplete", f"{prefix}: {exc}; the scaffold stage writes final/000-007.png "
                                                "(with selection: manual, copy the chosen views there)") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise SampleError("BadUpstream", f"{prefix}scaffold.json: {exc}") from None
    return views, K, poses


def add_view(scene: GrowingScene, name: str, rgb: np.ndarray, K: np.ndarray, pose: np.ndarray,
             depth: DepthPredictor, supervise_all: bool) -> tuple[int, float]:
    """Add one view: its depth aligned to the scene where the scene already shows it, new Gaussians
    where it does not. Returns (Gaussians added, hole ratio)."""
    from genfab.stages.scene.growing import HOLE_ALPHA

    height, width = rgb.shape[:2]
    seen = scene.render(pose, K, width, height)
    holes = seen.alpha < HOLE_ALPHA
    predicted = depth(rgb)
    aligned = align_depth(seen.depth, predicted.depth, holes)
    wo_edge, conf = masks_from_depth(aligned, holes, predicted.confidence)
    supervise = np.ones_like(holes) if supervise_all else holes
    added = scene.add_frame(Frame(name, rgb, aligned, supervise, wo_edge, conf, K, pose))
    return added, float(holes.mean())


def walk(scene: GrowingScene, poses: np.ndarray, K: np.ndarray, side: int, paint: Paint, depth: DepthPredictor,
         iterations: int) -> tuple[list[np.ndarray | None], list[float]]:
    """Walk the trajectory: per pose, render, let `paint` decide the frame, add it. Returns the
    painted frames (None where the render was kept) and every pose's hole ratio before painting."""
    from genfab.stages.scene.growing import HOLE_ALPHA

    frames: list[np.ndarray | None] = []
    ratios: list[float] = []
    for i, pose in enumerate(poses):
        seen = scene.render(pose, K, side, side)
        holes = seen.alpha < HOLE_ALPHA
        ratios.append(round(float(holes.mean()), 5))
        painted = paint(i, to_uint8(seen.rgb), holes)
        frames.append(painted)
        if painted is not None:
            add_view(scene, f"trajectory_{i:04d}", painted, K, pose, depth, supervise_all=False)
            scene.train(iterations)
    return frames, ratios


def walks(generator: str, vggt_geometry: bool) -> bool:
    """Whether the expansion walks its trajectory through the scaffold's scene (render, paint, align each
    frame's depth, train). Not when SEVA makes every frame and VGGT every point, as the lab's script does:
    the walk's scene would feed nothing that is written, at a depth pass and `iterations` steps a frame."""
    return not (generator == "seva" and vggt_geometry)


def scene_points(scene: GrowingScene) -> tuple[np.ndarray, np.ndarray]:
    """The scene's Gaussian centres and colours in [0, 1] (every frame's aligned depth, fused)."""
    from genfab.stages.gaussians.core import SH_C0

    splats = scene.export()
    return splats.means, np.clip(splats.sh0[:, 0, :] * SH_C0 + 0.5, 0.0, 1.0)


class Expansion:
    """What an expansion worker holds: the depth model, SEVA or the FLUX fill, VGGT, and the training settings."""

    def __init__(self, settings: ExpansionSettings, ctx: StageContext, models: ModelSet) -> None:
        self.settings, self.models = settings, models
        from genfab.stages.gaussians.core import TrainSettings
        from genfab.stages.scene.depth import DepthPro

        s = self.settings
        self.ctx = ctx
        self.device = require_cuda(ctx)
        self.train_settings = TrainSettings.of(GaussiansConfig(seed=s.scaffold.seed))
        self.depth = self.models.load("depth", s.scaffold.depth_model,
                                      lambda path, placement: DepthPro(path, placement, s.scaffold.fov_degrees))
        self.seva: Any = None
        self.fill: Any = None
        if s.frames_method() == "seva":
            from genfab.stages.worldexplorer.seva_adapter import load_seva

            self.seva = load_seva(self.models, s.seva)
        else:
            from genfab.stages.flux.fill import FluxFill

            sc = s.scaffold
            self.fill = self.models.load("inpainter", sc.flux_fill_model, lambda path, placement: FluxFill(
                path, placement, sc.fill_steps, sc.fill_guidance, sc.flux_runtime))
        self.vggt: Any = None
        if s.geometry_method() == "vggt":
            from genfab.stages.worldexplorer.vggt_adapter import Vggt

            self.vggt = self.models.load("vggt", s.vggt.model, Vggt)

    def hints(self, sample: Sample) -> dict[str, Any] | None:
        """The sample's own expansion fields, as the scaffold recorded them."""
        prefix = stage_prefix(sample.id, "scaffold")
        found = json.loads(sample.read_upstream(prefix + "scaffold.json", "scaffold")).get("expansion")
        return found if isinstance(found, dict) else None

    def process(self, sample: Sample) -> None:
        from genfab.stages.scene.growing import GrowingScene

        views, K, scaffold_poses = read_scaffold(sample)
        hints = self.hints(sample)
        e = sample_expansion(self.settings.expansion, hints, sample.id)
        side = views[0].shape[0]
        base = sample.seed(self.settings.scaffold.seed)
        work = Path(tempfile.mkdtemp(dir=self.ctx.workdir))
        started = time.perf_counter()
        walking = walks("seva" if self.seva is not None else "flux-fill", self.vggt is not None)
        scene: GrowingScene | None = None
        if walking:  # the walk renders, paints and trains the scaffold's scene
            scene = GrowingScene(self.train_settings, self.device, 1.0)
            for v, (rgb, pose) in enumerate(zip(views, scaffold_poses, strict=True)):
                add_view(scene, f"scaffold_{view_name(v)}", rgb, K, pose, self.depth, supervise_all=True)
            scene.extent = scene_scale(scene.frames[0].dpt)
            scene.train(e.iterations)
            extent = scene.extent
        else:  # SEVA's frames and VGGT's points: the trajectory's scale (view 000's depth) is all it needs
            extent = scene_scale(self.depth(views[0]).depth)
        poses = scaffold_trajectory(e.trajectory, e.num_frames, e.distance * extent)
        sample.timings["scaffoldSceneSeconds"] = round(time.perf_counter() - started, 3)

        started = time.perf_counter()
        if self.seva is not None:
            inputs = [PosedView(K, p, rgb) for rgb, p in zip(views, scaffold_poses, strict=True)]
            generated: list[np.ndarray] = self.seva(inputs, [PosedView(K, p) for p in poses], base, work / "seva")
            generator = "seva"

            def paint(i: int, rendered: np.ndarray, holes: np.ndarray) -> np.ndarray | None:
                return generated[i]  # every SEVA frame is new content: depth-aligned and added
        else:
            generator = "flux-fill"

            def paint(i: int, rendered: np.ndarray, holes: np.ndarray) -> np.ndarray | None:
                if holes.mean() < e.fill_min_hole_ratio:
                    return None
                filled: np.ndarray = self.fill(rendered, holes, seed=base + FILL_SEED_OFFSET + i)
                return filled
        painted: list[np.ndarray | None]
        if scene is not None:
            painted, ratios = walk(scene, poses, K, side, paint, self.depth, e.iterations)
        else:
            painted, ratios = list(generated), []
        sample.timings["framesSeconds"] = round(time.perf_counter() - started, 3)

        started = time.perf_counter()
        frames = [TrajFrame(rgb, K, pose, "scaffold") for rgb, pose in zip(views, scaffold_poses, strict=True)]
        for pose, image in zip(poses, painted, strict=True):
            if image is None:
                assert scene is not None  # only the walk leaves a frame unpainted
                image = to_uint8(scene.render(pose, K, side, side).rgb)
                frames.append(TrajFrame(image, K, pose, "rendered"))
            else:
                frames.append(TrajFrame(image, K, pose, "generated"))
        folder = work / FOLDER
        if self.vggt is not None:
            from genfab.stages.worldexplorer.vggt_adapter import degenerate_frames, to_scene

            folder.mkdir(parents=True, exist_ok=True)
            paths = []
            for i, frame in enumerate(frames):
                paths.append(folder / f"vggt_{i:04d}.png")
                paths[-1].write_bytes(encode_png(frame.rgb))
            geometry = self.vggt(paths)
            dropped = {"vggtDegenerateFrames": int(degenerate_frames(geometry.K).sum())}
            points, colors = to_scene(geometry, np.stack([f.cam_T_world for f in frames]), e.vggt_confidence_threshold)
            for path in paths:
                path.unlink()
            geometry_name = "vggt"
        else:
            assert scene is not None  # no VGGT: the walk's scene holds the points
            points, colors = scene_points(scene)
            geometry_name = "aligned-depth"
            dropped = {}
        counts = write_img2trajvid(folder, frames, points, colors, e.max_points)
        sample.timings["geometrySeconds"] = round(time.perf_counter() - started, 3)
        prefix = self.ctx.sample_prefix(sample.id)
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                sample.write_file(f"{prefix}{FOLDER}/{path.relative_to(folder).as_posix()}", path)
        sample.write_json(prefix + "expansion.json", {
            "generator": generator, "geometry": geometry_name, "trajectory": e.trajectory, "numFrames": e.num_frames,
            "fromMetadata": sorted(hints or {}),
            "distance": round(e.distance * extent, 6), "sceneExtent": round(extent, 6),
            "frames": counts, **dropped, "holeRatios": ratios, "splats": len(scene) if scene is not None else 0,
            "timings": dict(sample.timings)})
        sample.params.update(generator=generator, geometry=geometry_name,
                             generatedFrames=counts["generated"], renderedFrames=counts["rendered"],
                             **({"sevaRuntime": self.seva.applied} if self.seva is not None else {}),
                             **({"sevaCode": self.seva.source} if self.seva is not None else {}),
                             **({"vggtCode": self.vggt.source} if self.vggt is not None else {}),
                             **model_params(self.models))
        # The summary's producedBy: which method made the frames and the points (SEVA and VGGT are the
        # seed's; without their images genfab's own walk and the scene's depth-aligned points run).
        sample.produced_by = (f"expansion: {self.seva.source if self.seva is not None else 'walk (genfab)'}, "
                              f"geometry: {self.vggt.source if self.vggt is not None else 'scene'}")


def load(settings: ExpansionSettings, ctx: StageContext) -> Expansion:
    models = open_models(ctx)
    with required_models():
        return Expansion(settings, ctx, models)


EXPANSION = SampleStage("expansion", load, Expansion.process)
