"""GPU throughput of relighting's model stages, two implementations side by side on one machine.

`segment` (SAM3, text prompt), `degrade` (soft shading with Depth Anything V2 normals) and `caption`
(BLIP) run through the real stage runtime (`python -m genfab.stages <stage>`, one shard, the real
`from_pretrained` loading from a model location) on production-size models with random bf16
weights, once per code tree: the baseline tree (`--baseline`, e.g. main before the model-stage base,
extracted with `git archive`) and this one. Per stage and tree: images/s over the processing window
(the shard's wall time minus its model loading), model-load seconds, and the GPU busy fraction in
that window, sampled from NVML every 50 ms. Beside them, for `segment` and `degrade`, the plain
per-image loop (`plain_loop`: the same model class and per-image functions, one image at a time, in
its own process) on the same inputs, timed from its first image to its last. Both trees get the
same stage config, inputs, batch sizes and models; the baseline tree ignores config fields it does
not know.

Random weights decide nothing about quality: SAM3's detection threshold is set so that about
`--instances` instances per image pass (calibrated on the inputs), like a real portrait.

    python benchmarks/relighting_gpu.py --baseline .bench/main --images 64 --out results.md
    python benchmarks/relighting_gpu.py --tiny --images 4     # CPU smoke test with tiny models
    python benchmarks/relighting_gpu.py --images 256 --stages segment --no-plain --workers 16 --profile DIR
    python benchmarks/relighting_gpu.py --images 256 --stages segment --workers 16 --batch 16
    python benchmarks/relighting_gpu.py --images 8 --model-profile DIR --compile off vision all

`--profile DIR` runs this tree's shards under cProfile (the shard process's main thread: reading, the
model, handing chunks to the pool, delivering), stats and top functions in DIR; `--workers` sets the
pool's size (8 by default, as the results so far were measured).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from gpu_busy import GpuSampler

ROOT = Path(__file__).resolve().parent.parent
PORTRAITS = ROOT / "examples" / "data" / "portraits"
SAM3 = "facebook/sam3"
DEPTH = "depth-anything/Depth-Anything-V2-Small-hf"
BLIP = "Salesforce/blip-image-captioning-base"
BATCH = {"segment": 8, "degrade": 16, "caption": 16}
"""Each stage's own default batch size, given to both trees."""
UP = "a" * 64


# -- models (production-size configs, random bf16 weights; `tiny` reuses the test suite's)
def _dummy_vocab(path: Path, size: int, specials: list[str]) -> list[str]:
    words = specials + [f"w{i}" for i in range(size - len(specials))]
    path.mkdir(parents=True, exist_ok=True)
    return words


def save_models(root: Path, tiny: bool) -> None:
    if tiny:
        sys.path.insert(0, str(ROOT))
        from scripts.tiny_models import save_all

        save_all(root)
        return
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
        CLIPTokenizer,
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        Sam3Config,
        Sam3Model,
    )

    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        sam3 = Sam3Model(Sam3Config())  # facebook/sam3's architecture: ViT 1024x32 at 1008², 200 queries
        path = root / SAM3
        sam3.save_pretrained(path)
        del sam3
        vocab = {w: i for i, w in enumerate(_dummy_vocab(path, 49408, ["<|startoftext|>", "<|endoftext|>"]))}
        (path / "vocab.json").write_text(json.dumps(vocab))
        (path / "merges.txt").write_text("#version: 0.2\n")
        CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt")).save_pretrained(path)
        (path / "preprocessor_config.json").write_text(json.dumps(
            {"size": {"height": 1008, "width": 1008}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}))

        backbone = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, image_size=518,
                                patch_size=14, out_indices=[3, 6, 9, 12], apply_layernorm=True,
                                reshape_hidden_states=False)
        depth = DepthAnythingForDepthEstimation(DepthAnythingConfig(
            backbone_config=backbone, reassemble_hidden_size=384, neck_hidden_sizes=[48, 96, 192, 384],
            fusion_hidden_size=64, head_hidden_size=32))  # Depth-Anything-V2-Small's architecture
        path = root / DEPTH
        depth.save_pretrained(path)
        (path / "preprocessor_config.json").write_text(json.dumps(
            {"size": {"height": 518, "width": 518}, "image_mean": [0.485, 0.456, 0.406],
             "image_std": [0.229, 0.224, 0.225]}))

        blip = BlipForConditionalGeneration(BlipConfig())  # blip-image-captioning-base: ViT-B/16 at 384², BERT-base
        path = root / BLIP
        blip.save_pretrained(path)
    torch.set_default_dtype(torch.float32)
    words = _dummy_vocab(path, 30524, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    words[30522] = "[DEC]"
    (path / "vocab.txt").write_text("\n".join(words) + "\n")
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 384, "width": 384}),
                  tokenizer=BertTokenizer(str(path / "vocab.txt"), bos_token="[DEC]")).save_pretrained(path)


def calibrate_box_threshold(root: Path, images: list[np.ndarray], instances: int) -> float:
    """The SAM3 score threshold that lets about `instances` instances per image through."""
    import torch
    from transformers import AutoTokenizer, Sam3Model

    from genfab.stages.models.preprocess import Preprocess

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = Sam3Model.from_pretrained(root / SAM3, dtype=dtype).to(device).eval()
    tok = AutoTokenizer.from_pretrained(root / SAM3)
    pre = Preprocess.from_model_dir(root / SAM3, 1008)
    with torch.inference_mode():
        text = tok(["person"] * len(images), padding="max_length", truncation=True, max_length=32,
                   return_tensors="pt").to(device)
        out = model(pixel_values=pre(images, device, dtype), input_ids=text["input_ids"],
                    attention_mask=text["attention_mask"])
        scores = out.pred_logits.float().sigmoid()
        if getattr(out, "presence_logits", None) is not None:
            scores = scores * out.presence_logits.float().sigmoid()
    ranked = scores.sort(1, descending=True).values.cpu().numpy()
    k = min(instances, ranked.shape[1] - 1)
    threshold = float(np.mean((ranked[:, k - 1] + ranked[:, k]) / 2))
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return threshold


# -- inputs: the bundled portraits at `side`², and the upstream files degrade and caption read
def write_inputs(work: Path, n: int, side: int) -> list[np.ndarray]:
    sources = [cv2.resize(cv2.imread(str(p)), (side, side), interpolation=cv2.INTER_AREA)
               for p in sorted(PORTRAITS.glob("*.png"))]
    h = w = side
    yy, xx = np.mgrid[:h, :w]
    mask = ((((xx - w / 2) / (w * 0.3)) ** 2 + ((yy - h * 0.55) / (h * 0.42)) ** 2) <= 1).astype(np.uint8) * 255
    ids = [f"p{i:04d}" for i in range(n)]
    for folder in ("in", "segment", "albedo", "recombine"):
        (work / "up" / folder).mkdir(parents=True, exist_ok=True)
    for i, sid in enumerate(ids):
        img = sources[i % len(sources)]
        cv2.imwrite(str(work / "up" / "in" / f"{sid}.png"), img)
        cv2.imwrite(str(work / "up" / "segment" / f"{sid}_foreground.png"), np.dstack([img, mask]))
        cv2.imwrite(str(work / "up" / "segment" / f"{sid}_mask.png"), mask)  # degrade's person region
        cv2.imwrite(str(work / "up" / "albedo" / f"{sid}_albedo.png"), (img * (mask[..., None] > 0)).astype(np.uint8))
        cv2.imwrite(str(work / "up" / "recombine" / f"{sid}_composite.png"), img)
    for stage in ("segment", "albedo", "recombine"):  # the final shard reports downstream stages list
        report = {"stage": stage, "config_hash": UP, "index": 0, "shards": 1, "state": "succeeded", "total": n,
                  "succeeded": ids, "reused": 0, "failed": [], "started_at": 0.0, "updated_at": 0.0,
                  "model_load_seconds": None, "message": ""}
        key = work / "up" / "_genfab" / "progress" / stage / UP[:10] / "shard-00000.json"
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_text(json.dumps(report))
    return sources


def degrade_block() -> Any:
    """Soft shading from Depth Anything's normals for every image (the model's work on each)."""
    from genfab.api.relighting import DegradationConfig

    weights = {"softShading": 1.0, "hardShadow": 0.0, "specular": 0.0, "ambientOnly": 0.0}
    return DegradationConfig.model_validate(
        {"weights": weights, "softShading": {"normals": "depth-anything", "shadowPatterns": False}})


def segmentation_block(box_threshold: float, compile: bool = False) -> dict[str, Any]:
    return {"backends": ["sam3"], "boxThreshold": box_threshold, **({"compile": True} if compile else {})}


def stage_config(work: Path, tree: str, stage: str, box_threshold: float, batch: int | None = None,
                 compile: bool = False) -> dict[str, Any]:
    run = work / "runs" / tree
    up = work / "up"

    def ref(name: str) -> dict[str, str]:
        return {"name": name, "configHash": UP, "outputUri": f"file://{up / name}"}

    base = {"contract": 1, "resource": {"kind": "DatasetJob", "name": "bench"}, "pipeline": "relighting",
            "runUri": f"file://{run}", "stage": stage, "family": "segment", "configHash": "b" * 64,
            "outputUri": f"file://{run / stage}", "outputLayout": "", "shardSize": 100000,
            "batchSize": batch or BATCH[stage], "selection": {"suffixes": [".png"]}, "options": {}}
    if stage == "segment":
        from genfab.api.relighting import RelightingInput

        max_side = RelightingInput.model_fields["max_side"].default  # the pipeline's default working size
        return {**base, "inputUris": [f"file://{up / 'in'}"], "upstream": [], "ancestors": [],
                "config": {"segmentation": segmentation_block(box_threshold, compile), "seed": 0, "maxSide": max_side}}
    if stage == "degrade":
        # The baseline reads every key of the block (it had no typed defaults): give it the full block.
        full = degrade_block().model_dump(by_alias=True, mode="json")
        # run_uri holds the shard reports, so upstream reports must be found under it: point the
        # upstream entries' reports at the prepared folder by making it the run root for lookups.
        return {**base, "runUri": f"file://{up}", "outputUri": f"file://{run / stage}",
                "upstream": [ref("albedo")], "ancestors": [ref("segment"), ref("albedo")],
                "inputUris": [f"file://{up / 'albedo'}"], "config": {"degradation": full, "seed": 0}}
    return {**base, "runUri": f"file://{up}", "outputUri": f"file://{run / stage}", "upstream": [ref("recombine")],
            "ancestors": [ref("recombine")], "inputUris": [f"file://{up / 'recombine'}"],
            "config": {"captioning": {"backend": "transformers", "model": BLIP}}}


def run_stage(work: Path, tree: str, tree_root: Path, stage: str, box_threshold: float, workers: int = 8,
              profile: Path | None = None, batch: int | None = None, compile: bool = False,
              spy: Path | None = None) -> dict[str, Any]:
    """One shard of `stage` from `tree_root`'s code. `profile`: under cProfile, which sees the shard
    process's main thread (reading, the model, handing work to the pool, delivering), written to
    `profile/<tree>-<stage>.prof` with its top functions as `.txt` beside it. `spy`: under py-spy,
    sampling which of the shard process's threads holds the GIL (`spy/<tree>-<stage>.txt`, py-spy's
    collapsed stacks, summed per thread and function by `gil_summary`)."""
    cfg = stage_config(work, tree, stage, box_threshold, batch, compile)
    path = work / f"{tree}-{stage}.json"
    path.write_text(json.dumps(cfg))
    report_dir = Path(cfg["runUri"].removeprefix("file://")) / "_genfab" / "progress" / stage / ("b" * 10)
    for old in report_dir.glob("*.json"):
        old.unlink()
    # an earlier run's samples are never reused
    shutil.rmtree(cfg["outputUri"].removeprefix("file://"), ignore_errors=True)
    # Only this tree's genfab on the path (plus what the machine adds, e.g. carried wheels).
    paths = [str(tree_root / "operator"), str(tree_root / "stages"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": ":".join(p for p in paths if p),
           "GENFAB_STAGE_CONFIG": str(path), "GENFAB_MODELS": str(work / "models"), "JOB_COMPLETION_INDEX": "0",
           "GENFAB_SHARD_COUNT": "1", "GENFAB_PROGRESS_SECONDS": "30", "GENFAB_CPU_WORKERS": str(workers),
           "GENFAB_TERMINATION_LOG": str(work / f"{tree}-{stage}.termination")}
    command = [sys.executable, "-m", "genfab.stages", stage]
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        stats = profile / f"{tree}-{stage}.prof"
        command[1:2] = ["-m", "cProfile", "-o", str(stats), "-m"]
    if spy is not None:
        spy.mkdir(parents=True, exist_ok=True)
        command = [shutil.which("py-spy") or "py-spy", "record", "--gil", "--threads", "--nonblocking",
                   "--full-filenames", "--rate", str(SPY_RATE), "--format", "raw", "-o",
                   str(spy / f"{tree}-{stage}.txt"), "--", *command]
    started = time.time()
    with GpuSampler() as sampler:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    wall = time.time() - started
    if proc.returncode != 0:
        raise SystemExit(f"{tree} {stage} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    if profile is not None:
        top_functions(stats)
    if spy is not None:
        summary = gil_summary(spy / f"{tree}-{stage}.txt", wall)
        (spy / f"{tree}-{stage}.md").write_text(summary + "\n")
        print(summary, flush=True)
    report = json.loads((report_dir / "shard-00000.json").read_text())
    load = float(report["model_load_seconds"] or 0.0)
    begin, end = report["started_at"] + load, report["updated_at"]
    done = len(report["succeeded"])
    if report["failed"]:
        print(f"  {tree} {stage}: {len(report['failed'])} failed, e.g. {report['failed'][0]}", file=sys.stderr)
    return {"images": done, "seconds": end - begin, "images_per_s": done / max(end - begin, 1e-9),
            "load_seconds": load, "busy": sampler.busy(begin, end), "process_wall": wall}


SPY_RATE = 200
"""py-spy samples per second (`--py-spy`)."""


def gil_summary(collapsed: Path, wall: float, rows: int = 25) -> str:
    """Which threads held the GIL, and in which functions (py-spy `--gil --threads` collapsed stacks:
    `thread (name);frame;...;frame count`): shares of the samples a fully held GIL would give in `wall`
    seconds at `SPY_RATE`."""
    threads: dict[str, int] = {}
    leaves: dict[str, int] = {}
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")  # "thread (TID): NAME", then the frames outermost first
        name = re.sub(r"[-_]\d+$", "-N", frames[0].split("): ", 1)[-1])
        threads[name] = threads.get(name, 0) + int(count)
        leaf = next((f for f in reversed(frames[1:]) if "/genfab/" in f), frames[-1])
        leaf = re.sub(r"\(/\S*/genfab/", "(genfab/", leaf)
        leaves[f"{name}: {leaf}"] = leaves.get(f"{name}: {leaf}", 0) + int(count)
    full = max(wall * SPY_RATE, 1.0)
    lines = [f"GIL held {sum(threads.values()) / full:.0%} of {wall:.0f} s", "", "| thread | GIL share |",
             "| --- | ---: |"]
    lines += [f"| {t} | {n / full:.1%} |" for t, n in sorted(threads.items(), key=lambda x: -x[1])]
    lines += ["", "| thread: innermost genfab frame (else innermost) | GIL share |", "| --- | ---: |"]
    lines += [f"| {k} | {n / full:.1%} |" for k, n in sorted(leaves.items(), key=lambda x: -x[1])[:rows]]
    return "\n".join(lines)


def top_functions(stats: Path, rows: int = 30) -> None:
    """The shard's main thread by own time and by cumulative time, into `stats` with `.txt`."""
    import io
    import pstats

    out = io.StringIO()
    for order in ("tottime", "cumulative"):
        pstats.Stats(str(stats), stream=out).strip_dirs().sort_stats(order).print_stats(rows)
    stats.with_suffix(".txt").write_text(out.getvalue())


PLAIN = ("segment", "degrade")
"""The stages with a plain per-image loop beside them (`--plain`)."""


def plain_loop(work: Path, stage: str, box_threshold: float) -> dict[str, Any]:
    """The plain loop, in this process: the stage's own model class and per-image functions, one image
    at a time (read, model, CPU work, write), no pool, threads or batches. Prints when its first
    image starts and its last ends."""
    from genfab.api.relighting import MaskCleanup, RelightingInput, SegmentationConfig
    from genfab.stages.models.placement import Placement
    from genfab.stages.relighting import degradation
    from genfab.stages.relighting.degrade_stage import compute_degraded, load_depth
    from genfab.stages.relighting.images import decode, decode_color
    from genfab.stages.relighting.matte import person_region
    from genfab.stages.relighting.segment_models import Sam3Backend
    from genfab.stages.relighting.segment_stage import found, split_and_encode
    from genfab.stages.runtime.stage import sample_seed

    up, out = work / "up", work / "runs" / "plain" / stage
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    placement = Placement.choose()
    ids = sorted(p.stem for p in (up / "in").glob("*.png"))
    started = time.time()
    if stage == "segment":
        cfg = SegmentationConfig.model_validate(segmentation_block(box_threshold))
        model: Any = Sam3Backend(work / "models" / SAM3, cfg, placement)
    else:
        cfg_deg = degrade_block()
        model = load_depth(work / "models" / DEPTH, placement)
    placement.synchronize()
    begin, done = time.time(), 0
    for sid in ids:
        if stage == "segment":
            image = decode_color((up / "in" / f"{sid}.png").read_bytes(),
                                 RelightingInput.model_fields["max_side"].default)
            mask = model.masks([image])[0]
            if not found(mask):
                continue
            result = split_and_encode({"id": sid, "image": image, "mask": mask, "backend": "sam3", "info": {},
                                       "cleanup": MaskCleanup().pair(), "refine": False})
        else:
            fg = decode((up / "segment" / f"{sid}_foreground.png").read_bytes())
            albedo = decode((up / "albedo" / f"{sid}_albedo.png").read_bytes())
            mask = person_region(decode((up / "segment" / f"{sid}_mask.png").read_bytes()))
            params = degradation.draw_params(cfg_deg, sample_seed(0, f"{sid}#degrade"))
            job: dict[str, Any] = {"id": sid, "albedo": albedo[..., :3], "mask": mask, "params": params}
            if degradation.needs_normals(params):
                params.normals = f"depth-anything:{DEPTH}"  # what the stage records
                job["disparity"] = model.disparity([fg[..., :3]])[0]
            result = compute_degraded(job)
        for key, data in result["files"].items():
            (out / key).write_bytes(data)
        done += 1
    return {"images": done, "load_seconds": begin - started, "begin": begin, "end": time.time()}


def run_plain(work: Path, stage: str, box_threshold: float) -> dict[str, Any]:
    """`plain_loop` in a fresh process (as each stage runs), the GPU sampled over its window."""
    env = {**os.environ, "PYTHONPATH": ":".join(p for p in (str(ROOT / "operator"), str(ROOT / "stages"),
                                                            os.environ.get("PYTHONPATH", "")) if p)}
    with GpuSampler() as sampler:
        proc = subprocess.run([sys.executable, __file__, "--plain-worker", stage, "--work", str(work),
                               "--box-threshold", repr(box_threshold)], env=env, capture_output=True, text=True,
                              timeout=1200)
    if proc.returncode != 0:
        raise SystemExit(f"plain {stage} loop exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    seconds = r["end"] - r["begin"]
    return {"images": r["images"], "seconds": seconds, "images_per_s": r["images"] / max(seconds, 1e-9),
            "load_seconds": r["load_seconds"], "busy": sampler.busy(r["begin"], r["end"])}


COMPILE_PARTS = {"off": (), "vision": ("vision_encoder",),
                 "all": ("vision_encoder", "detr_encoder", "detr_decoder", "mask_decoder")}
"""SAM3's submodules compiled (torch.compile, in place) for each `--model-profile` variant."""
LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cudaGraphLaunch")


def model_profile(work: Path, box_threshold: float, out: Path, chunk: int, variants: list[str],
                  chunks: int = 10) -> None:
    """SAM3's `masks` alone on `chunk`-image chunks, in this process, per variant (eager, then parts of
    SAM3 compiled in place): wall and GPU milliseconds per chunk (CUDA events), torch.profiler over
    three chunks (host ops by own time, kernels by GPU time, launches per chunk, a Chrome trace) into
    `out/<variant>`, and the masks' agreement with eager's. Tells a host-bound model call from a
    GPU-bound one, and what compiling buys."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from genfab.api.relighting import RelightingInput, SegmentationConfig
    from genfab.stages.models.placement import Placement
    from genfab.stages.relighting.images import decode_color
    from genfab.stages.relighting.segment_models import Sam3Backend

    cfg = SegmentationConfig.model_validate(segmentation_block(box_threshold))
    backend = Sam3Backend(work / "models" / SAM3, cfg, Placement.choose())
    side = RelightingInput.model_fields["max_side"].default
    paths = sorted((work / "up" / "in").glob("*.png"))
    images = [decode_color(paths[i % len(paths)].read_bytes(), side) for i in range(chunk)]
    cuda = torch.cuda.is_available()  # without: the CPU smoke test (`--tiny`), host times only
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    reference: list[Any] = []
    for variant in variants:
        folder = out / variant
        folder.mkdir(parents=True, exist_ok=True)
        for part in COMPILE_PARTS[variant]:
            getattr(backend.model, part).compile()
        began = time.perf_counter()
        masks = backend.masks(images)
        sync()
        first = time.perf_counter() - began
        backend.masks(images)
        sync()
        walls, gpus = [], []
        for _ in range(chunks):
            events = [torch.cuda.Event(enable_timing=True) for _ in range(2)] if cuda else []
            began = time.perf_counter()
            if events:
                events[0].record()
            backend.masks(images)
            if events:
                events[1].record()
            sync()
            walls.append((time.perf_counter() - began) * 1000)
            gpus.append(events[0].elapsed_time(events[1]) if events else float("nan"))
        with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
            for _ in range(3):
                backend.masks(images)
            sync()
        averages = prof.key_averages()
        (folder / "host-ops.txt").write_text(averages.table(sort_by="self_cpu_time_total", row_limit=50))
        (folder / "kernels.txt").write_text(averages.table(sort_by="self_device_time_total", row_limit=50))
        prof.export_chrome_trace(str(folder / "trace.json"))
        launches = sum(1 for e in prof.events() if e.name in LAUNCHES) / 3
        kernel_ms = sum(e.self_device_time_total for e in averages if e.device_type.name == "CUDA") / 3 / 1000
        syncs = sum(e.count for e in averages if "Synchronize" in e.key) / 3
        reference = reference or masks
        differ = [float(np.mean(a != b)) for a, b in zip(reference, masks, strict=True)
                  if a is not None and b is not None]
        same = sum((a is None) == (b is None) for a, b in zip(reference, masks, strict=True))
        line = (f"SAM3 masks, {variant}, {chunk} images per chunk: wall {np.median(walls):.1f} ms, between events "
                f"{np.median(gpus):.1f} ms (median of {chunks}); first call {first:.1f} s; under the profiler: "
                f"kernels {kernel_ms:.1f} ms, {launches:.0f} launches and {syncs:.0f} synchronisations per chunk; "
                f"against eager: {same}/{len(masks)} images agree on found, pixels differing "
                f"{max(differ, default=0.0):.2e} at most")
        (folder / "summary.txt").write_text(line + "\n")
        print(line, flush=True)


def environment() -> str:
    import torch
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"GPU: {gpu}; torch {torch.__version__}; transformers {transformers.__version__}; "
            f"Python {sys.version.split()[0]}; {os.cpu_count()} CPUs.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, default=None, help="code tree (with operator/ and stages/) to compare")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--instances", type=int, default=5, help="SAM3 instances per image to let through")
    ap.add_argument("--stages", nargs="+", default=["segment", "degrade", "caption"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/genfab-relighting-gpu"))
    ap.add_argument("--tiny", action="store_true", help="tiny random models (CPU smoke test)")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    ap.add_argument("--workers", type=int, default=8, help="the stages' pool workers (GENFAB_CPU_WORKERS)")
    ap.add_argument("--batch", type=int, default=None,
                    help="this tree's stages' batchSize (the model's chunk); default: each stage's own")
    ap.add_argument("--profile", type=Path, default=None,
                    help="run this tree's stages under cProfile, the stats and their top functions in this folder")
    ap.add_argument("--py-spy", type=Path, default=None, dest="spy",
                    help="run this tree's stages under py-spy (GIL holders per thread) into this folder")
    ap.add_argument("--model-profile", type=Path, default=None,
                    help="profile SAM3's masks alone (this tree, `--batch` images a chunk) into this folder, then stop")
    ap.add_argument("--compile", nargs="+", choices=list(COMPILE_PARTS), default=["off"],
                    help="with --model-profile: the variants, in this order (each compiles more of SAM3 in place)")
    ap.add_argument("--sam3-compile", action="store_true",
                    help="this tree's segment with `segmentation.compile` (compiled in its model loading)")
    ap.add_argument("--no-plain", action="store_true", help="leave out the plain per-image loops")
    ap.add_argument("--plain-worker", choices=PLAIN, help=argparse.SUPPRESS)  # run_plain's own process
    ap.add_argument("--box-threshold", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "stages")]
    work = args.work
    if args.plain_worker:
        print(json.dumps(plain_loop(work, args.plain_worker, args.box_threshold)))
        return
    (work / "models").mkdir(parents=True, exist_ok=True)
    started = time.time()
    save_models(work / "models", args.tiny)
    print(f"models written in {time.time() - started:.1f}s", flush=True)
    images = write_inputs(work, args.images, args.side)
    threshold = calibrate_box_threshold(work / "models", images, args.instances)
    print(f"SAM3 score threshold for ~{args.instances} instances per image: {threshold:.4f}", flush=True)
    if args.model_profile:
        model_profile(work, threshold, args.model_profile, args.batch or BATCH["segment"], args.compile)
        return
    for f in (work / "models").rglob("*.safetensors"):  # warm the page cache: both trees read from memory
        f.read_bytes()
    trees = [("this tree", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    plain = [] if args.no_plain else [("plain loop", ROOT)]
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for i, stage in enumerate(args.stages):
        sides = trees + (plain if stage in PLAIN else [])
        order = sides if i % 2 == 0 else sides[::-1]  # alternate which side goes first
        for name, root in order:
            if name == "plain loop":
                r = run_plain(work, stage, threshold)
            else:
                r = run_stage(work, name.replace(" ", "-"), root, stage, threshold, args.workers,
                              args.profile if name == "this tree" else None,
                              args.batch if name == "this tree" else None,
                              args.sam3_compile and name == "this tree", args.spy if name == "this tree" else None)
            results[(stage, name)] = r
            busy = "n/a" if r["busy"] is None else f"{r['busy']:.0%}"
            print(f"{stage:8s} {name:10s} {r['images_per_s']:7.2f} img/s  load {r['load_seconds']:6.2f}s  "
                  f"GPU busy {busy}", flush=True)
    lines = [f"`{' '.join(sys.argv)}`", "", environment(), "",
             f"{args.images} portraits at {args.side}², one shard per stage, {args.workers} pool workers"
             f"{f', batchSize {args.batch} (this tree)' if args.batch else ''}"
             f"{' (profiled: cProfile)' if args.profile else ''}"
             f"{'; this tree with segmentation.compile' if args.sam3_compile else ''}; SAM3 score threshold "
             f"{threshold:.4f} (about {args.instances} instances per image with random weights).", "",
             "| stage (model) | code | images/s | model load s | GPU busy | images/s vs baseline | "
             "images/s vs plain loop |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    models = {"segment": "SAM3", "degrade": "Depth Anything V2 Small", "caption": "BLIP base"}
    for stage in args.stages:
        for name in [n for n, _ in trees + plain if (stage, n) in results]:
            r = results[(stage, name)]
            ratios = []
            for other in ("baseline", "plain loop"):
                base = results.get((stage, other))
                ratios.append(f"**{r['images_per_s'] / base['images_per_s']:.2f}x**"
                              if base and name == "this tree" else "")
            busy = "n/a" if r["busy"] is None else f"{r['busy']:.0%}"
            lines.append(f"| {stage} ({models[stage]}) | {name} | {r['images_per_s']:.2f} | {r['load_seconds']:.1f} "
                         f"| {busy} | {' | '.join(ratios)} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
