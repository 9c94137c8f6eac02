"""vistadream end to end at production size: seconds per sample and peak GPU memory per stage.

Writes FLUX.1-Fill-dev's architecture (12B transformer, T5-XXL, CLIP-L, VAE) and Depth Pro's
(three DINOv2-L/16 encoders, 952M parameters) with **random bf16 weights** in their diffusers and
transformers layouts to a model location (no weights can be downloaded here; about 35 GB of disk),
then runs `genfab run` on one synthetic 1024x768 photo-like image for each case, as a user does: one
process per stage shard, models loaded with `from_pretrained` from that location, the seed's
defaults otherwise (maxResolution 512, expansionPercent 0.2, 25 fill steps, initIterations 100,
coarseIterations 500, nFrames 10 (8 views added), 10 candidates per coarse view, renderFrames 150);
`--set FIELD=VALUE` (repeatable) sets a `spec.vistadream` field in every case (the H100 rows of
benchmarks/results/vistadream.md §2 ran at maxResolution 1024, fluxSteps 50, coarseDenseMultiplier 4,
trajMaxPercentage 60 and 10 views added, `--set nFrames=12` now).

- `no-outpaint`, `outpaint`: the seed's first two `stage` values;
- `coarse`: with `coarseFallbackMode: closest`, so every one of the nFrames - 2 attempts adds a view
  (random weights paint noise, so the seed's ratio window alone would decide nothing useful);
- `outpaint-group`: `outpaint` with `stages.outpaint.offload: group` (the 24-48 GB memory mode).

Reported per case: wall seconds of the whole run, and per stage its seconds, model-load seconds,
peak GPU memory (the shard report's `gpuPeakGiB`) and each sample's own seconds (the shard reports'
`seconds`, in the order the samples were made, model load apart), and the seconds each stage's own
outputs record (`inside`: the initial scene's training, the render's work, the coarse loop).

`--scenes N` runs N images in one job (inline samples, one shard of up to 8 scenes per stage at the
default shard size): a stage's first scene then carries the Pod's start and warm-up, the later ones what
a scene costs on a warm Pod (`genfab.planner.calibration`'s `sample_seconds`; its `pod_seconds` is the
stage's seconds less the later scenes' mean times N). The baseline for the fill itself is
benchmarks/vistadream.py (diffusers' eager pipeline in the same process).

    python benchmarks/vistadream_e2e.py --models /tmp/vd-models [--cases no-outpaint,outpaint,coarse] [--set F=V]
        [--scenes 2]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from genfab.contract.names import RUN_DIR, SUMMARY_KEY

ROOT = Path(__file__).resolve().parents[1]
FLUX_ID, DEPTH_PRO_ID = "black-forest-labs/FLUX.1-Fill-dev", "apple/DepthPro-hf"
DINOV2_L = {"model_type": "dinov2", "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
            "image_size": 384, "patch_size": 16, "layerscale_value": 1.0}
IMAGENET_HALF = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
"""Depth Pro's released normalisation."""
CASES = {
    "no-outpaint": ({"stage": "no-outpaint"}, {}),
    "outpaint": ({"stage": "outpaint"}, {}),
    "coarse": ({"stage": "coarse", "coarseFallbackMode": "closest"}, {}),
    "outpaint-group": ({"stage": "outpaint"}, {"outpaint": {"offload": "group"}}),
}


def write_models(root: Path, depth_backend: str = "depth-pro") -> None:
    """The fill and the depth model of vistadream with random weights, in their published layouts: Depth
    Pro (this benchmark's default backend, bf16), or MoGe-1 ViT-L for `--set depthBackend=moge` (the
    pipeline's default, the lab's depth model; needs MoGe's code on the path: scripts/gpu_tier.py
    --prepare-research --package moge, and `--set mogeImage=...`)."""
    from benchmarks.vistadream import build_pipeline

    if not (root / FLUX_ID / "model_index.json").is_file():
        pipe = build_pipeline(torch.device("cuda"))
        pipe.save_pretrained(root / FLUX_ID)
        del pipe
        gc.collect()
        torch.cuda.empty_cache()
    if depth_backend == "moge":
        from scripts.tiny_models import save_random_moge

        if not (root / "Ruicheng/moge-vitl/model.pt").is_file():
            save_random_moge(root)
    else:
        write_depth_pro(root)


def write_depth_pro(root: Path) -> None:
    """Depth Pro at production size with random bf16 weights, in transformers' layout."""
    from scripts.tiny_models import depth_pro_preprocessor
    from transformers import DepthProConfig, DepthProForDepthEstimation

    if not (root / DEPTH_PRO_ID / "config.json").is_file():
        torch.manual_seed(0)
        config = DepthProConfig(use_fov_model=True, image_model_config=DINOV2_L, patch_model_config=DINOV2_L,
                                fov_model_config=DINOV2_L)
        with torch.device("cuda"):
            model = DepthProForDepthEstimation(config).to(torch.bfloat16)
        with torch.no_grad():  # random FOV heads give ~0 degrees; centre this one's output on 60 degrees
            final = model.fov_model.head.layers[-1]
            final.weight.mul_(0.01)
            final.bias.fill_(60.0)
        model.save_pretrained(root / DEPTH_PRO_ID)
        depth_pro_preprocessor(root / DEPTH_PRO_ID, 1536, IMAGENET_HALF)
        del model
        gc.collect()
        torch.cuda.empty_cache()


def photo(path: Path, seed: int = 0) -> None:
    """A 1024x768 image with smooth structure and texture (what the fill and depth see)."""
    import cv2

    yy, xx = np.mgrid[0:768, 0:1024].astype(np.float32)
    rng = np.random.default_rng(seed)
    rgb = np.stack([128 + 100 * np.sin(xx / 97), 128 + 100 * np.cos(yy / 61), 128 + 60 * np.sin((xx + yy) / 43)], -1)
    rgb += rng.normal(0, 12, rgb.shape)
    cv2.imwrite(str(path), np.clip(rgb, 0, 255).astype(np.uint8)[..., ::-1])


def genfab_path() -> str:
    """genfab's own code first; what the caller's PYTHONPATH holds (a GPU tier's installed wheels) after it."""
    paths = [str(ROOT / p) for p in ("operator", "stages", "")] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    return os.pathsep.join(paths)


def scene_input(folder: Path, scenes: int) -> dict[str, Any]:
    """The job's input: one image, or `scenes` images (each its own texture) as inline samples."""
    if scenes == 1:
        image = folder / "synthetic.png"
        photo(image)
        return {"image": f"file://{image}"}
    images = folder / "scenes"
    images.mkdir(exist_ok=True)
    for i in range(scenes):
        photo(images / f"scene_{i}.png", seed=i)
    return {"datasetUri": f"file://{images}",
            "samples": [{"index": i, "photorealistic": {"path": f"scene_{i}.png"}} for i in range(scenes)]}


def sample_seconds(reports: list[dict[str, Any]]) -> list[float]:
    """Each produced sample's own seconds over a stage's shard reports, shard by shard, each shard's by
    sample id (a report is written with sorted keys): the order a shard makes this benchmark's samples,
    one variant with zero-padded indexes."""
    ordered = sorted(reports, key=lambda r: r.get("index", 0))
    return [float(seconds) for r in ordered for _, seconds in sorted((r.get("seconds") or {}).items())]


def read_sample_seconds(out: Path, stage: str) -> list[float]:
    """`sample_seconds` of the stage's reports in the run's folder (one config hash per stage here)."""
    paths = sorted((out / RUN_DIR / "progress" / stage).glob("*/shard-*.json"))
    return sample_seconds([json.loads(p.read_text()) for p in paths])


def run_case(name: str, folder: Path, models: Path, job_input: dict[str, Any], timeout: float, only: list[str],
             settings: dict[str, Any]) -> dict[str, Any]:
    vistadream, stages = CASES[name]
    vistadream = {"depthBackend": "depth-pro", **vistadream, **settings}  # what the cost rows measured
    out = folder / name
    doc = {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": f"bench-{name}"},
           "spec": {"pipeline": "vistadream", "input": job_input, "output": f"file://{out}",
                    "models": {"uri": f"file://{models}"}, "vistadream": vistadream,
                    **({"stages": stages} if stages else {}), **({"onlyStages": only} if only else {})}}
    spec = folder / f"{name}.yaml"
    spec.write_text(yaml.safe_dump(doc))
    env = {**os.environ, "PYTHONPATH": genfab_path()}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "genfab.cli.main", "run", str(spec)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {(done.stdout + done.stderr)[-1500:]}"}
    summary = json.loads((out / SUMMARY_KEY).read_text())
    rows = {s["name"]: {"seconds": s["seconds"], "modelLoadSeconds": s["modelLoadSeconds"],
                        "gpuPeakGiB": s.get("gpuPeakGiB"), "sampleSeconds": read_sample_seconds(out, s["name"])}
            for s in summary["stages"] if s["phase"] == "Succeeded"}
    result: dict[str, Any] = {"wall_seconds": round(wall, 1), "stages": rows}
    coarse = sorted(out.glob("**/coarse/coarse_summary.json"))
    if coarse:
        result["coarse"] = [{k: v for k, v in json.loads(c.read_text()).items() if k in ("status", "seconds")}
                            for c in coarse]
    result["inside"] = timed_parts(out)
    return result


def timed_parts(out: Path) -> dict[str, float]:
    """The seconds each stage's own outputs record (the gaussians stage's training in metrics.json, the
    render's `process` in summary.json, ...), by output file: what of a stage's seconds its work took,
    the rest being the process's start, reading and writing."""
    parts = {}
    for path in sorted(out.glob("**/*.json")):
        relative = path.relative_to(out).as_posix()
        if relative.startswith(RUN_DIR) or path.stat().st_size > 1 << 20:
            continue
        document = json.loads(path.read_text())
        if isinstance(document, dict) and isinstance(document.get("seconds"), int | float):
            parts[relative] = float(document["seconds"])
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="model location (written when missing)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/vistadream-e2e"))
    parser.add_argument("--cases", default="no-outpaint,outpaint,coarse,outpaint-group")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--only-stages", default="", help="comma-separated: run only these stages (onlyStages)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--scenes", type=int, default=1,
                        help="images in one job (2 or more: each stage's first scene apart from the later ones)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a spec.vistadream field for every case (its value read as YAML)")
    args = parser.parse_args()
    if args.scenes < 1:
        parser.error("--scenes: at least 1")
    settings: dict[str, Any] = {}
    for item in args.set:
        field, sep, value = item.partition("=")
        if not sep or not field:
            parser.error(f"--set {item!r}: expected FIELD=VALUE")
        settings[field] = yaml.safe_load(value)
    started = time.perf_counter()
    write_models(args.models, str(settings.get("depthBackend", "depth-pro")))
    print(f"models ready in {time.perf_counter() - started:.1f} s", flush=True)
    # gsplat's kernels once, here: a fresh machine's JIT build (about 100 s) would otherwise sit in the
    # first gsplat stage's seconds, where an image ships them prebuilt
    from benchmarks.gaussians_simple_trainer import gpu_tier

    if not gpu_tier().build({**os.environ, "PYTHONPATH": genfab_path()}):
        sys.exit("vistadream-e2e: gsplat's kernels did not build (see the line above)")
    args.work.mkdir(parents=True, exist_ok=True)
    job_input = scene_input(args.work, args.scenes)
    results: dict[str, Any] = {}
    for name in args.cases.split(","):
        only = [s for s in args.only_stages.split(",") if s]
        results[name] = run_case(name, args.work, args.models, job_input, args.timeout, only, settings)
        print(name, json.dumps(results[name]), flush=True)
    lines = [f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}, diffusers {version('diffusers')}, "
             f"transformers {version('transformers')}, gsplat {version('gsplat')}, Python {platform.python_version()}",
             f"settings: {json.dumps(settings) if settings else 'the defaults'}; {args.scenes} scene(s) in one job",
             "", "| case | wall s | stage | stage s | model load s | each scene's own s | peak GiB |",
             "| --- | ---: | --- | ---: | ---: | --- | ---: |"]
    for name, result in results.items():
        if "error" in result:
            lines.append(f"| {name} | failed | | | | | |")
            continue
        for i, (stage, row) in enumerate(result["stages"].items()):
            own = ", ".join(f"{v:.1f}" for v in row["sampleSeconds"]) or "-"
            lines.append(f"| {name if i == 0 else ''} | {result['wall_seconds'] if i == 0 else ''} | {stage} | "
                         f"{row['seconds']} | {row['modelLoadSeconds']} | {own} | {row['gpuPeakGiB']} |")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "table": lines, "settings": settings}, indent=2))


if __name__ == "__main__":
    main()
