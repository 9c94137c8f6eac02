"""reference-object speed, three parts (each prints a table; `--write` appends it to
benchmarks/results/reference_object.md):

`edit` (CUDA): genfab's Qwen Image Edit core against diffusers' eager `QwenImageEditPipeline.__call__`
at 1024², equal steps, true CFG, in one process on one GPU. The model is production size with random
bf16 weights (Qwen-Image's 20B transformer, its VAE); the text encoder is not run: the prompt
embeddings are random, with the token counts the 7B Qwen2.5-VL encoder gives a 1024² reference
image and an instruction. Each variant is an `EditRuntime` applied to the same transformer (`eager`
is none; FP8 variants come last: quantisation cannot be undone). Seconds per edit after a 2-step
warm-up; deviation: cosine and relative L2 of the final latents against eager's.

    python benchmarks/reference_object.py edit [--steps 50] [--variants eager,blocks,fp8+blocks] [--write]

`annotation` (CUDA): step 6 through the real runtime (`ANNOTATION`: PerSAM location prior and
cascade with SAM, SAM2 refinement, polygons, the YOLO dataset) with SAM ViT-H and SAM2.1 Hiera-L at
production size (random weights, from the model location), on synthetic 1024² scenes. Images/s is
measured between two runs of different sizes, so model loading and the reference's encoding cancel.

    python benchmarks/reference_object.py annotation [--images 32] [--write]

`cv` (CPU): step 7's CV augmentation stage (`CV_AUGMENTATION`, the real runtime over file://
storage: read, augment in its worker pool, write both datasets) against a single-process
albumentations loop of the same cascade on the same files writing the same two datasets
(`cv2.imread`, `augment`, `cv2.imencode`, the files and labels written), on synthetic annotated
images: augmented images/s, the stage's rate per worker against the loop (target >= 1.0), and how
it scales over workers (after the setup, which starts the worker processes).

    python benchmarks/reference_object.py cv [--images 64] [--size 1024] [--count 2] [--workers 1,2,4,8,16] [--write]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import platform
import pstats
import shutil
import tempfile
import time
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from genfab.api.reference_object import CvAugmentationConfig
from genfab.inventory import ShardReport, write_report
from genfab.inventory.reports import read_reports
from genfab.stages.runtime.loop import main as run_stage
from genfab.storage import open_storage

ROOT = Path(__file__).resolve().parent.parent


def dataset(folder: Path, images: int, size: int) -> list[str]:
    """`images` smooth random pictures with a label each, under `train/` (the annotated dataset)."""
    rng = np.random.default_rng(0)
    (folder / "train/images").mkdir(parents=True)
    (folder / "train/labels").mkdir(parents=True)
    ids = []
    for i in range(images):
        low = (rng.random((size // 32, size // 32, 3)) * 255).astype(np.uint8)
        image = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
        unit = f"img_{i:04d}"
        cv2.imwrite(str(folder / f"train/images/{unit}.png"), image)
        (folder / f"train/labels/{unit}.txt").write_text("0 0.1 0.1 0.9 0.1 0.5 0.9\n")
        ids.append(unit)
    (folder / "classes.txt").write_text("object\n")
    return ids


def loop(folder: Path, out: Path, ids: list[str], count: int) -> float:
    """The straightforward loop: one process, one image at a time, writing what the stage writes (the
    seed's two datasets: the augmented copies, and the originals with their copies). Returns
    augmented images/s."""
    from genfab.stages.reference_object.augment import augment, build_transform  # albumentations: the cv part's

    transform = build_transform(CvAugmentationConfig(count=count))
    roots = (out / "07_cv_augmented_dataset/train", out / "07_cv_combined_dataset/train")
    for root in roots:
        (root / "images").mkdir(parents=True)
        (root / "labels").mkdir(parents=True)
    started = time.perf_counter()
    for n, unit in enumerate(ids):
        source, label = folder / f"train/images/{unit}.png", folder / f"train/labels/{unit}.txt"
        shutil.copyfile(source, roots[1] / f"images/{unit}.png")
        shutil.copyfile(label, roots[1] / f"labels/{unit}.txt")
        bgr: Any = cv2.imread(str(source))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for k in range(count):
            image, _ = augment(transform, rgb, n * 1000 + k)
            _, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            for root in roots:
                (root / f"images/{unit}_cv_{k}.png").write_bytes(png.tobytes())
                shutil.copyfile(label, root / f"labels/{unit}_cv_{k}.txt")
    return len(ids) * count / (time.perf_counter() - started)


def stage_env(root: Path, run: Path, stage: str, family: str, config: dict[str, Any], upstream: dict[str, str],
              output: str, inputs: tuple[str, ...] = (), **env: str) -> dict[str, str]:
    """The environment of shard 0 of 1 of `stage` under `run` (file://), as its Pod gets it."""
    cfg = {"contract": 1, "resource": {"kind": "DatasetJob", "name": "bench"}, "pipeline": "reference-object",
           "stage": stage, "family": family, "configHash": "c" * 64, "runUri": f"file://{run}",
           "outputUri": f"file://{run}/{output}", "inputUris": list(inputs), "shardSize": 1 << 20,
           "upstream": [{"name": name, "configHash": "a" * 64, "outputUri": f"file://{run}/{folder}"}
                        for name, folder in upstream.items()],
           "config": config}
    (root / f"{stage}.json").write_text(json.dumps(cfg))
    return {**os.environ, "GENFAB_STAGE_CONFIG": str(root / f"{stage}.json"), "JOB_COMPLETION_INDEX": "0",
            "GENFAB_SHARD_COUNT": "1", "GENFAB_TERMINATION_LOG": str(root / "t"), **env}


def stage(root: Path, ids: list[str], count: int, workers: int) -> tuple[float, float]:
    """The CV stage through the real runtime, one shard with `workers` worker processes: (augmented
    images/s over the whole run, the setup's seconds: starting the worker processes)."""
    from genfab.stages.reference_object.cv_stage import CV_AUGMENTATION

    run = root / f"run-{workers}"
    shutil.copytree(root / "annotated", run / "06_yolo_dataset")
    write_report(open_storage(f"file://{run}"), ShardReport("annotation", "a" * 64, 0, 1, state="succeeded",
                                                            total=len(ids), succeeded=ids))
    env = stage_env(root, run, "cv-augmentation", "cv", {"seed": 1, "cvAugmentation": {"count": count}},
                    {"annotation": "06_yolo_dataset"}, "", GENFAB_CPU_WORKERS=str(workers))
    started = time.perf_counter()
    if run_stage(CV_AUGMENTATION.stage(), env) != 0:
        raise SystemExit("the stage failed; see its log above")
    seconds = time.perf_counter() - started
    report = read_reports(open_storage(f"file://{run}"), "cv-augmentation", "c" * 64)[0]
    return len(ids) * count / seconds, report.model_load_seconds or 0.0


def _loop_part(job: tuple[Path, Path, list[str], int]) -> float:
    return loop(*job)


def independent_loops(root: Path, ids: list[str], count: int, processes: int) -> float:
    """The machine's own ceiling: `processes` copies of the plain loop at once, each on its share
    of the images, nothing shared. Returns their total augmented images/s."""
    import multiprocessing

    shares = [ids[i::processes] for i in range(processes)]
    jobs = [(root / "annotated", root / f"loops-{processes}" / str(i), share, count) for i, share in enumerate(shares)]
    warm = [(root / "annotated", root / "warm" / str(i), share[:1], 1) for i, share in enumerate(shares)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_loop_part, warm, chunksize=1)  # the imports, one image each: not measured
        shutil.rmtree(root / "warm")
        started = time.perf_counter()
        pool.map(_loop_part, jobs, chunksize=1)
        seconds = time.perf_counter() - started
    return len(ids) * count / seconds


def cv(args: argparse.Namespace) -> str:
    root = Path(tempfile.mkdtemp(prefix="genfab-ro-bench-"))
    ids = dataset(root / "annotated", args.images, args.size)
    base = loop(root / "annotated", root / "loop", ids, args.count)
    rows = []
    for w in (int(v) for v in args.workers.split(",")):
        ceiling = independent_loops(root, ids, args.count, w) if w > 1 else base
        rate, setup = stage(root, ids, args.count, w)
        steady = len(ids) * args.count / (len(ids) * args.count / rate - setup)
        rows.append((w, rate, setup, steady, ceiling))
        print(f"workers {w}: {rate:.2f} images/s, {steady:.2f} after setup (loop {base:.2f}, {w} independent "
              f"loops {ceiling:.2f})", flush=True)
    lines = [f"### CV augmentation, {args.images} images of {args.size}x{args.size}, {args.count} copies each",
             "", f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; Python "
             f"{platform.python_version()}, albumentations {version('albumentations')}, opencv "
             f"{version('opencv-python-headless')}.",
             f"Command: `python benchmarks/reference_object.py cv --images {args.images} --size {args.size} "
             f"--count {args.count} --workers {args.workers}`", "",
             "| workers | loop images/s | stage images/s (whole run) | setup s | stage images/s after setup | "
             "per worker / loop | scaling vs 1 worker | N independent loops images/s (their scaling) | "
             "stage after setup / N loops |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    one = rows[0][3] if rows and rows[0][0] == 1 else None
    for w, rate, setup, steady, ceiling in rows:
        scaling = f"{steady / one / w:.2f}" if one else "-"
        lines.append(f"| {w} | {base:.2f} | {rate:.2f} | {setup:.1f} | {steady:.2f} | **{steady / w / base:.2f}x** | "
                     f"{scaling} | {ceiling:.2f} ({ceiling / w / base:.2f}) | **{steady / ceiling:.2f}x** |")
    shutil.rmtree(root, ignore_errors=True)
    return "\n".join(lines)


# --- edit -----------------------------------------------------------------------------------------

QWEN_IMAGE_TRANSFORMER: dict[str, Any] = {"patch_size": 2, "in_channels": 64, "out_channels": 16, "num_layers": 60,
                          "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 3584,
                          "guidance_embeds": False, "axes_dims_rope": (16, 56, 56)}
"""Qwen-Image's (and Qwen-Image-Edit's) transformer config: 20.4B parameters."""
QWEN_IMAGE_SCHEDULER = {"base_image_seq_len": 256, "base_shift": 0.5, "max_image_seq_len": 8192, "max_shift": 0.9,
                        "num_train_timesteps": 1000, "shift": 1.0, "shift_terminal": 0.02,
                        "time_shift_type": "exponential", "use_dynamic_shifting": True}
PROMPT_TOKENS, NEGATIVE_TOKENS = 1400, 1372
"""Prompt embedding lengths: Qwen-Image-Edit's encoder sees the 1024² reference as 37 x 37 = 1,369
vision tokens plus the instruction (the chat template's first 64 tokens are dropped)."""


def random_edit_pipeline(device: Any) -> Any:
    """Qwen Image Edit at production size with random bf16 weights (the same on every call)."""
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImageTransformer2DModel,
    )

    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        transformer: Any = QwenImageTransformer2DModel(**QWEN_IMAGE_TRANSFORMER)  # type: ignore[no-untyped-call]
        vae: Any = AutoencoderKLQwenImage()  # type: ignore[no-untyped-call]
    torch.set_default_dtype(previous)
    transformer.eval()
    vae.eval()
    scheduler = FlowMatchEulerDiscreteScheduler(**QWEN_IMAGE_SCHEDULER)  # type: ignore[no-untyped-call]
    pipe: Any = QwenImageEditPipeline(scheduler=scheduler, vae=vae, text_encoder=None,  # type: ignore[no-untyped-call]
                                      tokenizer=None, processor=None, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def edit_inputs(device: Any) -> dict[str, Any]:
    import torch
    from PIL import Image

    g = torch.Generator(device).manual_seed(1)
    rng = np.random.default_rng(0)
    low = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(cv2.resize(low, (1024, 1024), interpolation=cv2.INTER_CUBIC))

    def embeds(n: int) -> tuple[Any, Any]:
        x = torch.randn(1, n, int(QWEN_IMAGE_TRANSFORMER["joint_attention_dim"]), generator=g, device=device)
        return x.to(torch.bfloat16), torch.ones(1, n, dtype=torch.long, device=device)

    pe, pm = embeds(PROMPT_TOKENS)
    ne, nm = embeds(NEGATIVE_TOKENS)
    return {"image": image, "prompt_embeds": pe, "prompt_embeds_mask": pm, "negative_prompt_embeds": ne,
            "negative_prompt_embeds_mask": nm, "true_cfg_scale": 4.0}


def runtime_of(variant: str) -> Any:
    """`eager`, or `+`-joined `blocks`, `fp8` (rowwise), `fp8t` (tensorwise), `fbc<threshold>`,
    `cfg<truncation>`."""
    from genfab.api.reference_object import EditRuntime

    parts = set(variant.split("+")) - {"eager"}
    fbc = next((float(p[3:]) for p in parts if p.startswith("fbc")), 0.0)
    cfg = next((float(p[3:]) for p in parts if p.startswith("cfg")), 1.0)
    fp8 = "rowwise" if "fp8" in parts else "tensorwise" if "fp8t" in parts else "off"
    return EditRuntime(compile="blocks" if "blocks" in parts else "off", fp8=fp8, first_block_cache=fbc,
                       cfg_truncation=cfg)


def edit(args: argparse.Namespace) -> str:
    import torch

    from genfab.stages.reference_object import edit_speed

    device = torch.device("cuda")
    started = time.perf_counter()
    pipe = random_edit_pipeline(device)
    print(f"pipeline built in {time.perf_counter() - started:.0f} s", flush=True)
    inputs = edit_inputs(device)

    def run(steps: int) -> Any:
        generator = torch.Generator("cpu").manual_seed(7)
        edit_speed.reset(pipe.transformer)
        with torch.inference_mode():
            return pipe(**inputs, num_inference_steps=steps, generator=generator, output_type="latent").images

    rows, reference = [], None
    for variant in args.variants.split(","):
        edit_speed.undo(pipe.transformer)
        applied = edit_speed.apply(pipe.transformer, runtime_of(variant), device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        began = time.perf_counter()
        run(2)  # warm-up: compilation (both prompt lengths), autotuning, the allocator
        torch.cuda.synchronize()
        warmup = time.perf_counter() - began
        seconds = []
        for _ in range(args.runs):
            torch.cuda.synchronize()
            began = time.perf_counter()
            latents = run(args.steps).float().flatten()
            torch.cuda.synchronize()
            seconds.append(time.perf_counter() - began)
        mean = sum(seconds) / len(seconds)
        if reference is None:
            reference = latents
        cosine, rel_l2 = deviation(latents, reference)
        row = {"variant": variant, "applied": applied, "seconds": mean, "warmup": warmup,
               "peak": torch.cuda.max_memory_allocated() / 2**30, "cosine": cosine, "rel_l2": rel_l2}
        rows.append(row)
        print(json.dumps(row), flush=True)
    eager = rows[0]["seconds"]
    lines = [f"### Qwen Image Edit at 1024², {args.steps} steps, true CFG 4.0, random bf16 weights",
             "", f"{torch.cuda.get_device_name()}, torch {torch.__version__}, diffusers {version('diffusers')}, "
             f"torchao {installed('torchao')}, Python {platform.python_version()}.",
             f"Command: `python benchmarks/reference_object.py edit --steps {args.steps} --runs {args.runs} "
             f"--variants {args.variants}`", "",
             "| variant | applied | s / edit | vs first row | warm-up s (2 steps) | peak GiB | latent cosine | "
             "relative L2 |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['variant']} | {', '.join(r['applied']) or 'diffusers eager'} | {r['seconds']:.2f} | "
                     f"**{r['seconds'] / eager:.2f}x** | {r['warmup']:.1f} | {r['peak']:.1f} | {r['cosine']:.6f} | "
                     f"{r['rel_l2']:.4f} |")
    return "\n".join(lines)


# --- quantised ------------------------------------------------------------------------------------

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out")
"""The attention projections a Qwen Image Edit LoRA such as the multi-camera one adapts."""


def random_camera_lora(transformer: Any, folder: Path, rank: int = 16) -> Path:
    """A random rank-`rank` LoRA for every block's attention projections of `transformer`, in
    diffusers' LoRA format (what `load_lora_weights` reads), plus a model card."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(3)
    weights = {}
    for name, module in transformer.named_modules():
        if isinstance(module, torch.nn.Linear) and name.split(".attn.")[-1] in LORA_TARGETS and ".attn." in name:
            weights[f"transformer.{name}.lora_A.weight"] = (
                torch.randn(rank, module.in_features, generator=g) / module.in_features**0.5).to(torch.bfloat16)
            weights[f"transformer.{name}.lora_B.weight"] = (
                torch.randn(module.out_features, rank, generator=g) * 0.01).to(torch.bfloat16)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(folder / "pytorch_lora_weights.safetensors"))
    (folder / "README.md").write_text("Random multi-camera-shaped LoRA written by benchmarks/reference_object.py.\n")
    return folder


def timed_edits(pipe: Any, inputs: dict[str, Any], steps: int, runs: int) -> dict[str, Any]:
    """Seconds per edit (`runs` after a 1-step warm-up) and the peak GPU memory of those edits."""
    import torch

    from genfab.stages.reference_object import edit_speed

    def run(n: int) -> Any:
        edit_speed.reset(pipe.transformer)
        with torch.inference_mode():
            return pipe(**inputs, num_inference_steps=n, generator=torch.Generator("cpu").manual_seed(7),
                        output_type="latent").images

    run(2)  # the warm-up: compiles (a second prompt length recompiles once)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(runs):
        began = time.perf_counter()
        latents = run(steps)
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - began)
    return {"seconds": sum(seconds) / len(seconds), "peak": torch.cuda.max_memory_allocated() / 2**30,
            "held": torch.cuda.memory_allocated() / 2**30, "latents": latents.float().cpu()}


def quantised(args: argparse.Namespace) -> str:
    """The default edit model's form, a bitsandbytes 4-bit export, made from the production-size
    transformer (random bf16 weights) and loaded through the stage's own path (`load_pipeline`,
    `load_lora`, `fuse_lora`), against the bf16 transformer with the same LoRA fused."""
    import gc

    import torch
    from diffusers import BitsAndBytesConfig, QwenImageTransformer2DModel
    from scripts.tiny_models import save_tiny_qwen_image_edit

    from genfab.api.reference_object import EditRuntime
    from genfab.stages.models.placement import Placement
    from genfab.stages.reference_object.edit_speed import apply, dequantize, undo
    from genfab.stages.reference_object.edit_speed import quantised as is_quantised
    from genfab.stages.reference_object.qwen_edit import fuse_lora, load_lora, load_pipeline

    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="genfab-4bit-"))
    device = torch.device("cuda")
    rows: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    pipe = random_edit_pipeline(device)
    lora = random_camera_lora(pipe.transformer, root / "lora")
    pipe.transformer.save_pretrained(root / "bf16-transformer", max_shard_size="10GB")
    print(f"bf16 transformer built and saved in {time.perf_counter() - started:.0f} s", flush=True)
    inputs = edit_inputs(device)
    load_lora(pipe, lora)
    fuse_lora(pipe)
    rows["bf16"] = timed_edits(pipe, inputs, args.steps, args.runs)
    print(json.dumps(printable(rows["bf16"])), flush=True)
    vae = pipe.vae
    del pipe
    gc.collect()
    torch.cuda.empty_cache()

    # the export: the pipeline folder's transformer quantised to 4 bit (NF4, bf16 compute), as
    # ovedrive/qwen-image-edit-4bit ships it; the text encoder is not run (random prompt embeddings)
    export = save_tiny_qwen_image_edit(root / "models")
    began = time.perf_counter()
    q4 = QwenImageTransformer2DModel.from_pretrained(  # type: ignore[no-untyped-call]
        root / "bf16-transformer", torch_dtype=torch.bfloat16,
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                               bnb_4bit_compute_dtype=torch.bfloat16))
    quantise_s = time.perf_counter() - began
    shutil.rmtree(root / "bf16-transformer")
    shutil.rmtree(export / "transformer")
    q4.save_pretrained(export / "transformer")
    shutil.rmtree(export / "vae")
    vae.save_pretrained(export / "vae")
    print(f"quantised in {quantise_s:.0f} s and saved", flush=True)
    del q4, vae
    gc.collect()
    torch.cuda.empty_cache()
    size = sum(f.stat().st_size for f in (export / "transformer").rglob("*") if f.is_file()) / 2**30

    began = time.perf_counter()
    pipe = load_pipeline(export, Placement.choose())
    load_lora(pipe, lora)
    fuse_lora(pipe)
    load_s = time.perf_counter() - began
    assert is_quantised(pipe.transformer), "the export did not load quantised"
    kept_lora = any("lora" in name for name, _ in pipe.transformer.named_modules())
    rows["4bit"] = timed_edits(pipe, inputs, args.steps, args.runs)
    print(json.dumps(printable(rows["4bit"])), flush=True)
    del pipe
    gc.collect()
    torch.cuda.empty_cache()

    # genfab's default on the same export: dequantized once at load (editRuntime.dequantize: auto), the
    # LoRA fused into the bf16 weights, compile: blocks; then fp8: rowwise on top
    began = time.perf_counter()
    placement = Placement.choose()
    pipe = load_pipeline(export, placement)
    done = dequantize(pipe.transformer, EditRuntime(), placement.device, placement.offload)
    load_lora(pipe, lora)
    fuse_lora(pipe)
    genfab_load_s = time.perf_counter() - began
    assert done == ["dequantized=bf16"] and not is_quantised(pipe.transformer), done
    for name, runtime in (("dequantized", EditRuntime()), ("dequantized+fp8", EditRuntime(fp8="rowwise"))):
        applied = apply(pipe.transformer, runtime, placement.device)
        rows[name] = {**timed_edits(pipe, inputs, args.steps, args.runs), "applied": done + applied}
        undo(pipe.transformer)
        print(json.dumps(printable(rows[name])), flush=True)
    shutil.rmtree(root, ignore_errors=True)
    b, q = rows["bf16"], rows["4bit"]
    lines = [f"### The 4-bit default edit model (bitsandbytes NF4) vs bf16, 1024², {args.steps} steps, true CFG 4.0",
             "", f"{torch.cuda.get_device_name()}, torch {torch.__version__}, diffusers {version('diffusers')}, "
             f"bitsandbytes {installed('bitsandbytes')}, peft {installed('peft')}, Python {platform.python_version()}.",
             f"Command: `python benchmarks/reference_object.py quantised --steps {args.steps} --runs {args.runs}`", "",
             "Qwen-Image-Edit's transformer at production size (random bf16 weights), quantised with "
             f"`BitsAndBytesConfig(load_in_4bit, nf4, bf16 compute)` in {quantise_s:.0f} s and saved "
             f"({size:.1f} GiB); the pipeline folder loaded by the stage's `load_pipeline` with a random rank-16 "
             f"LoRA on every attention projection (`load_lora`, `fuse_lora`: "
             f"{'kept as separate layers' if kept_lora else 'fused'}) in {load_s:.0f} s. The bf16 row is the same "
             "transformer and LoRA (fused) in memory.", "",
             "| transformer | s / edit | vs bf16 | peak GiB | GiB held after the edits |",
             "| --- | ---: | ---: | ---: | ---: |",
             f"| bf16, LoRA fused | {b['seconds']:.2f} | 1.00x | {b['peak']:.1f} | {b['held']:.1f} |",
             f"| bitsandbytes 4-bit (the default's form), LoRA separate | {q['seconds']:.2f} | "
             f"**{q['seconds'] / b['seconds']:.2f}x** | {q['peak']:.1f} | {q['held']:.1f} |",
             "", f"The same export through genfab's stage path (`load_pipeline`, `editRuntime.dequantize: auto`, "
             f"`load_lora`, `fuse_lora`: {genfab_load_s:.0f} s), against the 4-bit export run as the lab's script "
             "runs it (diffusers' eager pipeline, the LoRA as separate layers). Deviation: the final latents "
             "against the 4-bit run's.", "",
             "| `editRuntime` | applied | s / edit | vs the 4-bit eager run | peak GiB | latent cosine | relative L2 |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
             f"| the lab's way | 4-bit, eager | {q['seconds']:.2f} | 1.00x | {q['peak']:.1f} | 1 | 0 |"]
    for name, label in (("dequantized", "the default"), ("dequantized+fp8", "`fp8: rowwise`")):
        r = rows[name]
        cos, rel = deviation(r["latents"], q["latents"])
        lines.append(f"| {label} | {', '.join(r['applied'])} | {r['seconds']:.2f} | "
                     f"**{r['seconds'] / q['seconds']:.2f}x** | {r['peak']:.1f} | {cos:.6f} | {rel:.4f} |")
    return "\n".join(lines)


def printable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "latents"}


def deviation(a: Any, b: Any) -> tuple[float, float]:
    """(cosine, relative L2) of two latents."""
    import torch

    a, b = a.flatten().double(), b.flatten().double()
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0)), float((a - b).norm() / b.norm())


# --- annotation -----------------------------------------------------------------------------------

def production_segmenters(models: Path) -> None:
    """SAM ViT-H and SAM2.1 Hiera-L with random weights where the annotation stage looks for them."""
    import importlib.resources

    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from segment_anything import sam_model_registry

    from genfab.api.reference_object import AnnotationParameters
    from genfab.stages.reference_object.sam_models import (
        SAM2_CHECKPOINT,
        SAM2_CONFIG,
        SAM_CHECKPOINTS,
    )

    defaults = AnnotationParameters()
    sam_model, sam2_model = defaults.sam_model, defaults.sam2_model
    torch.manual_seed(0)
    (models / sam_model / "checkpoints").mkdir(parents=True)
    sam = sam_model_registry["vit_h"]()
    torch.save(sam.state_dict(), models / sam_model / "checkpoints" / SAM_CHECKPOINTS["vit_h"])
    folder = models / sam2_model
    folder.mkdir(parents=True)
    yaml_text = (importlib.resources.files("sam2") / "configs" / "sam2.1" / SAM2_CONFIG).read_text()
    (folder / SAM2_CONFIG).write_text(yaml_text)
    model = instantiate(OmegaConf.create(yaml_text).model, _recursive_=True)
    torch.save({"model": model.state_dict()}, folder / SAM2_CHECKPOINT)


def annotation_scenes(root: Path, images: int) -> tuple[Path, list[str]]:
    """`images` synthetic 1024² scenes (an orange disc on dull colours) as step 4's output."""
    rng = np.random.default_rng(images)
    run = root / f"run-{images}"
    scenes = run / "04_dataset"
    scenes.mkdir(parents=True)
    ids = []
    for i in range(images):
        low = rng.random((8, 8, 3)) * 90 + 40
        img = cv2.resize(low, (1024, 1024), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)
        cv2.circle(img, (300 + 10 * (i % 40), 500), 150, (0, 140, 255), -1)
        unit = f"perspective_0_prompt_{i}_seed_1"
        cv2.imwrite(str(scenes / f"{unit}.png"), img)
        ids.append(unit)
    write_report(open_storage(f"file://{run}"), ShardReport("scenes", "a" * 64, 0, 1, state="succeeded",
                                                            total=images, succeeded=ids))
    return run, ids


def timed_annotation_stage() -> Any:
    """The annotation stage, noting when its models are loaded (the processing window starts): its `load`
    wrapped, the stage still the declared one (its settings typed)."""
    from genfab.stages.reference_object import annotate_stage

    def load_and_note(settings: Any, ctx: Any) -> Any:
        annotator = annotate_stage.load(settings, ctx)
        stage.loaded_at = time.time()
        stage.annotator = annotator
        return annotator

    stage = replace(annotate_stage.ANNOTATION, load=load_and_note).stage()
    stage.declared_as = "genfab.stages.reference_object.annotate_stage:ANNOTATION"
    return stage


def annotation_run(root: Path, models: Path, images: int, sampler: Any, profile: bool = False
                   ) -> dict[str, Any]:
    """One annotation stage run over `images` synthetic scenes: seconds (loading included), the GPU's
    busy share after loading, and the stage (its models stay loaded for the plain loop);
    `profile`: print where the time went (cProfile, by cumulative time)."""
    run, _ = annotation_scenes(root, images)
    env = stage_env(root, run, "annotation", "segment", {"objectName": "mug", "seed": 1, "annotation": {}},
                    {"scenes": "04_dataset"}, "06_yolo_dataset",
                    (f"file://{root}/ref.png", f"file://{root}/ref_mask.png"), GENFAB_MODELS=f"file://{models}")
    stage = timed_annotation_stage()
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    if run_stage(stage, env) != 0:
        raise SystemExit("the annotation stage failed; see its log above")
    seconds, ended = time.perf_counter() - started, time.time()
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return {"seconds": seconds, "busy": sampler.busy(stage.loaded_at, ended), "stage": stage,
            "processing": ended - stage.loaded_at}


def annotation_plain_loop(stage: Any, root: Path, images: int, sampler: Any) -> dict[str, Any]:
    """The plain per-image loop: the stage's own models and per-image functions (decode, `segment`,
    the polygon, the image and label files), one image after another in this process, no threads."""
    import torch

    from genfab.stages.common.imaging import decode_rgb
    from genfab.stages.reference_object.yolo import label_line, mask_to_polygon

    run, ids = annotation_scenes(root / "plain", images)
    out = run / "plain-out"
    out.mkdir()
    started, begin = time.perf_counter(), time.time()
    for unit in ids:
        data = (run / "04_dataset" / f"{unit}.png").read_bytes()
        image = decode_rgb(data, unit)
        with torch.inference_mode():
            mask, _ = stage.annotator.segment(image)
        polygon = mask_to_polygon(mask.astype(np.uint8))
        (out / f"{unit}.png").write_bytes(data)
        (out / f"{unit}.txt").write_text(label_line(polygon, *mask.shape[::-1]) + "\n" if len(polygon) >= 3 else "")
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"rate": images / seconds, "busy": sampler.busy(begin, time.time())}


def annotation(args: argparse.Namespace) -> str:
    import torch
    from gpu_busy import GpuSampler

    root = Path(tempfile.mkdtemp(prefix="genfab-ro-annot-"))
    models = root / "models"
    production_segmenters(models)
    ref = np.full((1024, 1024, 3), 255, np.uint8)
    mask = np.zeros((1024, 1024), np.uint8)
    cv2.circle(mask, (512, 512), 300, 255, -1)
    ref[mask > 0] = (0, 140, 255)
    cv2.imwrite(str(root / "ref.png"), ref)
    cv2.imwrite(str(root / "ref_mask.png"), mask)
    small, large = max(2, args.images // 4), args.images
    with GpuSampler() as sampler:
        r_small = annotation_run(root, models, small, sampler)
        r_large = annotation_run(root, models, large, sampler, args.profile)
        plain = annotation_plain_loop(r_large["stage"], root, large, sampler)
    rate = (large - small) / (r_large["seconds"] - r_small["seconds"])

    def busy(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    lines = ["### Annotation (step 6): SAM ViT-H + SAM2.1 Hiera-L, random weights, 1024² scenes", "",
             f"{torch.cuda.get_device_name()}, torch {torch.__version__}, segment-anything "
             f"{installed('segment-anything')}, sam2 {installed('sam2')}, {os.cpu_count()} CPUs.",
             f"Command: `python benchmarks/reference_object.py annotation --images {args.images}`", "",
             "| run | images | seconds (loading included) | GPU busy after loading |", "| --- | ---: | ---: | ---: |",
             f"| stage, small | {small} | {r_small['seconds']:.1f} | {busy(r_small['busy'])} |",
             f"| stage, large | {large} | {r_large['seconds']:.1f} | {busy(r_large['busy'])} |", "",
             "| code | images/s | GPU busy | vs plain loop |", "| --- | ---: | ---: | ---: |",
             f"| stage (between the two runs: loading and the reference cancel out) | {rate:.2f} | "
             f"{busy(r_large['busy'])} | **{rate / plain['rate']:.2f}x** |",
             f"| plain per-image loop ({large} images) | {plain['rate']:.2f} | {busy(plain['busy'])} | |"]
    shutil.rmtree(root, ignore_errors=True)
    return "\n".join(lines)


def installed(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = parser.add_subparsers(dest="part", required=True)
    p_cv = parts.add_parser("cv", help="step 7's CV augmentation stage vs a single-process loop (CPU)")
    p_cv.add_argument("--images", type=int, default=64)
    p_cv.add_argument("--size", type=int, default=1024)
    p_cv.add_argument("--count", type=int, default=2)
    p_cv.add_argument("--workers", default=",".join(str(w) for w in (1, 2, 4, 8, 16) if w <= (os.cpu_count() or 1)))
    p_edit = parts.add_parser("edit", help="genfab's Qwen Image Edit core vs diffusers' eager pipeline (CUDA)")
    p_edit.add_argument("--steps", type=int, default=50)
    p_edit.add_argument("--runs", type=int, default=1)
    p_edit.add_argument("--variants", default="eager,blocks,fp8+blocks")
    p_q4 = parts.add_parser("quantised",
                            help="the 4-bit default edit model vs bf16, through the stage's loading (CUDA)")
    p_q4.add_argument("--steps", type=int, default=4)
    p_q4.add_argument("--runs", type=int, default=1)
    p_q4.add_argument("--dir", help="work folder (about 60 GB at peak; default: a temporary one)")
    p_annotation = parts.add_parser("annotation", help="step 6 with SAM ViT-H + SAM2 at production size (CUDA)")
    p_annotation.add_argument("--images", type=int, default=32)
    p_annotation.add_argument("--profile", action="store_true", help="print where the larger run's time went")
    for p in (p_cv, p_edit, p_q4, p_annotation):
        p.add_argument("--write", action="store_true",
                       help="append the table to benchmarks/results/reference_object.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    table = {"cv": cv, "edit": edit, "quantised": quantised, "annotation": annotation}[args.part](args)
    print(table, flush=True)
    if args.write:
        with (ROOT / "benchmarks" / "results" / "reference_object.md").open("a") as fh:
            fh.write("\n" + table + "\n")


if __name__ == "__main__":
    main()
