"""The `gaussians` stage: 3DGS training with gsplat for every scene sample, several per GPU Pod.

Input per sample: a scene folder (Nerfstudio `transforms.json` or a COLMAP model, images, optional
masks and `points3D`/`ply_file_path` initial points) under the sample's folder of the upstream stage
(the lab's worldexplorer: `{variant}/index_XXXX/scenes/` from `expansion`), or of the job input for a
gaussians-only run. Output per sample, under `{sample}/scenes/gaussians/` (worldexplorer) or
`{sample}/gaussians/` (vistadream):

- the 3DGS PLY (`plyPath`, default `gf.ply`; the lab's vistadream `--export-gaussians-ply-path`: a name ending
  in `.ply` is the file, anything else a folder that gets `gf.ply`),
- `metrics.json` (PSNR/SSIM/LPIPS on held-out views, Gaussians, steps/s, config),
- `preview.png` (held-out view next to its render), `trajectory.mp4` (an orbit; `video: false` skips).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from genfab.api.pipelines._scene import GaussiansSettings
from genfab.stages.models.cuda import require_cuda
from genfab.stages.runtime import BadInput, Sample, SampleError, SampleStage, StageContext
from genfab.stages.runtime.pictures import probe

PLY_DEFAULT = "gf.ply"


def ply_key(ply_path: str) -> str:
    """The lab's vistadream: a `.ply` path is the file itself, anything else a folder that holds `gf.ply`."""
    path = ply_path.strip("/") or PLY_DEFAULT
    return path if path.lower().endswith(".ply") else f"{path}/{PLY_DEFAULT}"


def find_scene_dir(root: Path) -> Path:
    """The shallowest folder under `root` holding transforms.json or a COLMAP model."""
    from genfab.stages.gaussians.loaders import SceneFormatError, find_scene

    candidates = sorted((p.parent for p in root.rglob("transforms.json")), key=lambda p: len(p.parts))
    candidates += sorted((p.parent.parent.parent if p.parent.name == "0" else p.parent.parent
                          for p in root.rglob("cameras.*") if p.suffix in (".bin", ".txt")
                          and "sparse" in p.parts), key=lambda p: len(p.parts))
    for folder in candidates:
        try:
            find_scene(folder)
            return folder
        except SceneFormatError:
            continue
    raise SampleError("NoScene", f"no transforms.json or COLMAP model (sparse/0/cameras.bin|txt) under {root.name}/")


def read_images(scene_dir: Path, cameras: list[Any]) -> dict[str, np.ndarray]:
    from PIL import Image

    images: dict[str, np.ndarray] = {}
    for cam in cameras:
        for key, rel in ((cam.name, cam.image), (f"{cam.name}#mask", cam.mask)):
            if rel is None:
                continue
            path = scene_dir / rel
            try:  # the decoding policy's bounds; as stored, no EXIF orientation: the cameras were calibrated so
                probe(path.read_bytes(), str(rel))
                with Image.open(path) as im:
                    arr = np.asarray(im.convert("RGB" if key == cam.name else "L"))
            except (OSError, ValueError) as exc:
                raise SampleError("UnreadableImage", f"{rel}: {exc}") from None
            if key == cam.name and arr.shape[:2] != (cam.height, cam.width):
                raise SampleError("ImageSizeMismatch", f"{rel} is {arr.shape[1]}x{arr.shape[0]}, the camera says "
                                                       f"{cam.width}x{cam.height}")
            images[key] = arr
    return images


class Gaussians:
    """What a 3DGS worker holds from shard to shard: the training settings, LPIPS and DiFix (refinement).
    Its settings are the `gaussians` block (validated by the runtime against the pipeline's declared
    model, which also checks its cross-field rules such as sparseGrad needing packed)."""

    def __init__(self, settings: GaussiansSettings, ctx: StageContext) -> None:
        from genfab.stages.gaussians.core import TrainSettings

        self.settings = settings
        cfg = settings.gaussians
        self.train_settings = TrainSettings.of(cfg)
        self.batch = cfg.scenes_per_pod
        """Scenes trained together (`scenesPerPod`): the stage's batch."""
        self.ply = ply_key(cfg.ply_path)
        self.video = cfg.video
        self.packing = cfg.packing
        self.scene_store = ctx.upstream_output() if ctx.upstream else ctx.source
        self.ctx = ctx
        self.device = require_cuda(ctx)  # last, so that a CPU machine still validates the whole config
        self.workdir = ctx.workdir
        self.lpips = self._load_lpips(ctx, cfg.lpips_model)
        self.fixer = self._load_fixer(ctx) if self.settings.refinement is not None else None

    def _load_lpips(self, ctx: StageContext, model: str) -> Any:
        """The evaluation's LPIPS from the model location; missing, it is one line in the metrics."""
        from genfab.stages.gaussians.losses import Lpips
        from genfab.stages.models.location import ModelUnavailable, resolve_model

        try:
            return Lpips.load(resolve_model(model, ctx.workdir / "models", ctx.env), self.device)
        except ModelUnavailable as exc:
            return Lpips.load(None, self.device, f"lpipsModel: {exc}")

    def _load_fixer(self, ctx: StageContext) -> Any:
        """DiFix for refinement: the base model from the model location, the checkpoint (if any) over it."""
        from genfab.stages.gaussians.refine import DifixFixer
        from genfab.stages.models.location import ModelUnavailable, resolve_model
        from genfab.storage import StorageError

        r = self.settings.refinement
        assert r is not None
        try:
            base = resolve_model(r.base_model, ctx.workdir / "models", ctx.env)
        except ModelUnavailable as exc:
            raise BadInput(f"refinement: {exc}") from None
        checkpoint = None
        if self.settings.checkpoint:
            folder, _, name = self.settings.checkpoint.rpartition("/")
            checkpoint = ctx.workdir / "difix" / name
            try:
                ctx.open(folder).download_file(name, checkpoint)
            except StorageError as exc:
                raise BadInput(f"refinement checkpoint {self.settings.checkpoint}: {exc}") from None
        try:
            return DifixFixer(base, checkpoint, r.prompt, r.timestep, self.device)
        except ValueError as exc:  # not a Difix3D checkpoint, or one for another LoRA
            raise BadInput(f"refinement: {exc}") from None

    def _refiner_factory(self) -> Any:
        if self.fixer is None:
            return None
        from genfab.stages.gaussians.refine import Refiner, RefineSettings

        r = self.settings.refinement
        assert r is not None
        settings = RefineSettings(tuple(r.fix_steps), r.novel_views, r.novel_distance, r.novel_weight,
                                  r.novel_probability, self.train_settings.seed)

        fixer = self.fixer

        def make(trainer: Any) -> Refiner:
            # the training images are kept as uint8 on the host: DiFix's references in [0, 1]
            images = [trainer.images[i].numpy().astype(np.float32) / 255.0 for i in range(len(trainer.train_cams))]
            return Refiner(fixer, settings, trainer.train_cams, trainer.test_cams, images, trainer.scale)
        return make

    def _load(self, sample: Sample) -> tuple[Any, dict[str, np.ndarray]]:
        from genfab.stages.gaussians.loaders import SceneFormatError, load_scene

        local = self.workdir / "scenes" / sample.id
        if self.scene_store.download_prefix(f"{sample.id}/", local) == 0:
            raise SampleError("NoScene", f"nothing under {sample.id}/ in {self.scene_store}")
        scene_dir = find_scene_dir(local)
        try:
            scene = load_scene(scene_dir)
        except SceneFormatError as exc:
            raise SampleError("BadScene", str(exc).replace(str(local), sample.id)) from None
        return scene, read_images(scene_dir, scene.cameras)

    def process_batch(self, samples: list[Sample]) -> list[Exception | None]:
        from genfab.stages.gaussians.train import train_scenes

        errors: list[Exception | None] = [None] * len(samples)
        loaded: list[tuple[int, Any, dict[str, np.ndarray]]] = []
        for i, sample in enumerate(samples):
            try:
                scene, images = self._load(sample)
                loaded.append((i, scene, images))
            except SampleError as exc:
                errors[i] = exc
        if not loaded:
            return errors
        started = time.perf_counter()
        results = train_scenes([(scene, images) for _, scene, images in loaded], self.train_settings, self.device,
                               packing=self.packing, refine=self._refiner_factory(), lpips=self.lpips)
        for (i, scene, images), result in zip(loaded, results, strict=True):
            try:
                self._write(samples[i], scene, images, result, len(loaded), time.perf_counter() - started)
            except SampleError as exc:
                errors[i] = exc
        return errors

    def _fix_final(self, cams: list[Any], renders: list[np.ndarray], train_cams: list[Any],
                   images: dict[str, np.ndarray]) -> np.ndarray:
        """Final renders fixed by DiFix, each with its nearest training image as reference."""
        assert self.fixer is not None
        fixed: np.ndarray = self.fixer.fix(np.stack(renders).astype(np.float32),
                                           _nearest_refs(cams, train_cams, images))
        return fixed

    def _write(self, sample: Sample, scene: Any, images: dict[str, np.ndarray], result: Any, packed: int,
               seconds: float) -> None:
        from genfab.stages.gaussians.ply import write_ply
        from genfab.stages.gaussians.render import render_splats
        from genfab.stages.gaussians.train import orbit_cameras

        out = self.workdir / "out" / sample.id
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        dropped = write_ply(out / "scene.ply", result.splats)
        prefix = self.ctx.sample_prefix(sample.id)  # the output layout: `{sample}/scenes/gaussians/`, ...
        sample.write_file(prefix + self.ply, out / "scene.ply")
        _, test = scene.split(self.train_settings.test_every)
        preview_cam = (test or scene.cameras)[0]
        bg = self.train_settings.background
        rendered = render_splats(result.splats, [preview_cam], self.device, background=bg)[0]
        sample.write(prefix + "preview.png", _png(np.concatenate([images[preview_cam.name] / 255.0, rendered], 1)))
        fix_final = self.fixer is not None and self.settings.refinement is not None \
            and self.settings.refinement.fix_final_renders
        train_cams, _ = scene.split(self.train_settings.test_every)
        if fix_final:
            fixed = self._fix_final([preview_cam], [rendered], train_cams, images)[0]
            sample.write(prefix + "preview_fixed.png",
                         _png(np.concatenate([images[preview_cam.name] / 255.0, fixed], 1)))
        if self.video:
            orbit = orbit_cameras(scene, 60)
            frames = render_splats(result.splats, orbit, self.device, background=bg)
            if write_video(out / "trajectory.mp4", frames):
                sample.write_file(prefix + "trajectory.mp4", out / "trajectory.mp4")
            if fix_final and write_video(out / "trajectory_fixed.mp4",
                                         list(self._fix_final(orbit, frames, train_cams, images))):
                sample.write_file(prefix + "trajectory_fixed.mp4", out / "trajectory_fixed.mp4")
        if self.settings.refinement is not None:
            result.metrics.setdefault("refinement", {})["difix"] = self.settings.checkpoint or (
                f"base model {self.settings.refinement.base_model}")
        metrics = {**result.metrics, "scene": scene.meta, "views": len(scene.cameras),
                   "dropped_non_finite": dropped, "scenes_packed": packed, "batch_seconds": round(seconds, 2),
                   "ply": prefix + self.ply, "config": self.train_settings.model_dump()}
        sample.write(prefix + "metrics.json", json.dumps(metrics, indent=2, default=str).encode())
        sample.params.update(psnr=metrics.get("psnr"), gaussians=metrics.get("num_gaussians"),
                             quality=scene_figures(metrics))


GAUSSIANS = SampleStage("gaussians", Gaussians, make_batch=Gaussians.process_batch, batch_size=lambda held: held.batch)


def scene_figures(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The trained scene's quality figures (`genfab.api.quality.SCENE_3DGS`) from its metrics: those measured."""
    found = {"scenePsnr": metrics.get("psnr"), "sceneSsim": metrics.get("ssim"), "sceneLpips": metrics.get("lpips"),
             "gaussians": metrics.get("num_gaussians")}
    return {name: round(float(v), 4) for name, v in found.items() if isinstance(v, int | float)}


def _nearest_refs(cams: list[Any], train_cams: list[Any], images: dict[str, np.ndarray]) -> np.ndarray:
    from genfab.stages.gaussians.cameras import scene_scale
    from genfab.stages.gaussians.refine import nearest

    scale = scene_scale(train_cams)
    return np.stack([images[train_cams[nearest(c.c2w, [t.c2w for t in train_cams], scale)].name] / 255.0
                     for c in cams]).astype(np.float32)


def _png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_video(path: Path, frames: list[np.ndarray], fps: int = 30) -> bool:
    """H.264-compatible mp4 through OpenCV's bundled FFmpeg (mp4v); False when OpenCV is missing. Frames
    are RGB, uint8 as they are or float in [0, 1] (uint8 ones skip a float copy of every frame)."""
    try:
        import cv2
    except ImportError:
        return False
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        rgb = frame if frame.dtype == np.uint8 else (np.clip(frame, 0, 1) * 255).astype(np.uint8)
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path.exists() and path.stat().st_size > 0
