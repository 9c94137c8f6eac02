"""worldexplorer per stage at production size: seconds per sample, model load, peak GPU memory and
GPU-hours per 100 samples for `scaffold` (`scaffold_gen` + `automatic`), the built-in `expansion` and
`gaussians`, run by genfab's own stage runtime (the shard loop, reports and timers every Pod runs).

FLUX.1-dev and FLUX.1-Fill-dev (12B transformers, T5-XXL, CLIP-L, VAE) are built in memory with
**random bf16 weights** (nothing can be downloaded here, and two 34 GB folders do not fit this
machine's disk): the stages' own FluxText/FluxFill wrappers take them (`from_pipeline`), so their
"model load" is building them on the GPU, not reading 58 GB of weights; add your storage's read time.
Depth Pro (three DINOv2-L/16, 952M parameters) and CLIP ViT-B/16 are written with random weights and
loaded with `from_pretrained` as in a Pod. The seed's defaults otherwise: 576² views, 50 steps per
image, 4 candidates per gap, 120 trajectory frames (`outward`), 150 training steps per added frame,
`compile: blocks`; the pictures mean nothing, the timings and memory are the real models'.

Each stage runs as one shard over `--samples` samples (one Pod's worth): the first sample carries the
torch.compile warm-up, later ones show the steady state, and load vs per-sample seconds show what a
shard of N amortises.

    python benchmarks/worldexplorer_stages.py --samples 2 --gs-steps 7000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "examples" / "data" / "portraits" / "astronaut.png"
CLIP_B16 = {"text_config": {"hidden_size": 512, "intermediate_size": 2048, "num_attention_heads": 8,
                            "num_hidden_layers": 12, "vocab_size": 54, "bos_token_id": 52, "eos_token_id": 53,
                            "pad_token_id": 53},
            "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
                              "num_hidden_layers": 12, "image_size": 224, "patch_size": 16},
            "projection_dim": 512}


def write_small_models(root: Path) -> None:
    """Depth Pro and CLIP ViT-B/16 at production size, random weights, their published layouts."""
    from benchmarks.vistadream_e2e import write_depth_pro
    from scripts.tiny_models import clip_vocab
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    for flux in ("FLUX.1-dev", "FLUX.1-Fill-dev"):  # built in memory by `inject_flux`; the folders must exist
        (root / "black-forest-labs" / flux).mkdir(parents=True, exist_ok=True)
        (root / "black-forest-labs" / flux / "model_index.json").write_text('{"_note": "built in memory"}')
    write_depth_pro(root)
    path = root / "openai" / "clip-vit-base-patch16"
    clip_vocab(path)
    CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), model_max_length=77).save_pretrained(path)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(**CLIP_B16)).to(torch.bfloat16).save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 224},
        "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_resize": True, "do_rescale": True,
        "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711]}))


def inject_flux() -> None:
    """The stages' FLUX loaders build production-size pipelines in memory instead of reading weights."""
    from benchmarks.vistadream import FILL, TEXT, build_pipeline

    from genfab.stages.flux import fill, text

    real_text, real_fill = text.FluxText, fill.FluxFill

    def flux_text(path: Path, placement: Any, steps: int, guidance: float, options: Any) -> Any:
        return real_text.from_pipeline(build_pipeline(placement.device, TEXT), placement, steps, guidance, options)

    def flux_fill(path: Path, placement: Any, steps: int, guidance: float, options: Any, prompt: str = "") -> Any:
        return real_fill.from_pipeline(build_pipeline(placement.device, FILL), placement, steps, guidance, options,
                                       prompt)

    text.FluxText = flux_text  # type: ignore[assignment,misc]
    fill.FluxFill = flux_fill  # type: ignore[assignment,misc]


def scenejob(root: Path, models: Path, samples: int, gs_steps: int) -> dict[str, Any]:
    data = root / "curated"
    data.mkdir(exist_ok=True)
    for i in range(samples):
        (data / f"{i}.png").write_bytes(PORTRAIT.read_bytes())
    (data / "metadata.json").write_text(json.dumps({"samples": [
        {"index": i, "prompt": "a sunlit reading room with tall shelves", "photorealistic": {"path": f"{i}.png"}}
        for i in range(samples)]}))
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "we-bench"},
            "spec": {"pipeline": "worldexplorer", "input": {"manifest": (data / "metadata.json").as_uri()},
                     "output": (root / "out").as_uri(), "models": {"uri": models.as_uri()},
                     "shardSize": samples,
                     "worldexplorer": {"scaffold": {"method": "scaffold_gen", "selection": "automatic"}},
                     "gaussians": {"steps": gs_steps, "video": False}}}


def run_stage(the_plan: Any, name: str, work: Path, models: dict[str, str]) -> dict[str, Any]:
    """One shard of a stage in this process, through genfab's runtime; its report's numbers."""
    from genfab.inventory import read_reports
    from genfab.planner import stage_config
    from genfab.sequencing import shard_env
    from genfab.stages.runtime import main
    from genfab.stages.runtime.registry import load
    from genfab.storage import open_storage

    stage = the_plan.stage(name)
    cfg = stage_config(the_plan, stage)
    config_path = work / f"{name}.json"
    config_path.write_text(cfg.to_json())
    env = {**os.environ, **shard_env(cfg, stage, 1, 0, models, str(config_path))}
    implementation, decl = load(the_plan.pipeline, name)
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    code = main(implementation, env=env, settings=decl.settings)
    wall = time.perf_counter() - started
    assert code == 0, f"stage {name} exited {code}"
    report = next(iter(read_reports(open_storage(the_plan.output_uri), name, stage.config_hash).values()))
    del implementation
    gc.collect()
    torch.cuda.empty_cache()
    return {"wall": wall, "load": report.model_load_seconds or 0.0, "seconds": list(report.seconds.values()),
            "peak_gib": (report.gpu_peak_bytes or 0) / 2**30, "failed": len(report.failed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--gs-steps", type=int, default=7000)
    parser.add_argument("--stages", default="scaffold,expansion,gaussians")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    from genfab.api import parse_resource
    from genfab.planner import plan
    from genfab.sequencing import models_env

    work = args.work or Path(tempfile.mkdtemp(prefix="we-bench-"))
    models = work / "models"
    write_small_models(models)
    inject_flux()
    resource = parse_resource(scenejob(work, models, args.samples, args.gs_steps))
    the_plan = plan(resource)
    env = models_env(resource.spec.models, mounted=False)
    rows = {name: run_stage(the_plan, name, work, env) for name in args.stages.split(",")}
    print(f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}, diffusers {version('diffusers')}, "
          f"transformers {version('transformers')}, gsplat {version('gsplat')}; Python {platform.python_version()}")
    print(f"samples per shard: {args.samples}; gaussians steps: {args.gs_steps}\n")
    print("| stage | model load s | first sample s | later samples s (mean) | peak GPU GiB | GPU-h / 100 samples "
          "(shard of 1) | GPU-h / 100 samples (load amortised) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in rows.items():
        first, rest = r["seconds"][0], r["seconds"][1:] or r["seconds"]
        steady = sum(rest) / len(rest)
        one = 100 * (r["load"] + first) / 3600
        amortised = (r["load"] + first + 99 * steady) / 3600
        print(f"| {name} | {r['load']:.1f} | {first:.1f} | {steady:.1f} | {r['peak_gib']:.1f} | {one:.2f} | "
              f"{amortised:.2f} |")
    print("\n" + json.dumps(rows))


if __name__ == "__main__":
    main()
