"""The built-in DiFix trainer: Difix3D's recipe (`train_difix.py`) on diffusers and accelerate.

One process per GPU (torchrun starts them; accelerate reads the rank from the environment). Per
optimizer step every rank takes its slice of the global micro-batches (`data.GlobalBatches`), runs
DiFix, and the loss is Difix3D's: L2 + LPIPS (VGG) + the Gram loss on a 400x400 crop after
`gramWarmupSteps`, weighted by the `lambda*` hyperparameters. AdamW over the UNet, the VAE decoder's
LoRA and the skip convolutions (Difix3D's parameter order), clipped at `maxGradNorm`.

Speed (`fast`, the default): channels-last memory, SDPA attention, `torch.compile` of the model,
fused AdamW, TF32 matmuls, prompt embeddings encoded once per distinct prompt, and images decoded by
loader processes while the GPU trains. The plain eager loop (`fast=False`) is what
`benchmarks/tuning.py` compares against.

Rank 0 writes, under the run folder: `checkpoints/model_<step>.pkl` (Difix3D's format, every
`checkpointEvery` steps and at the end), `eval/` (PSNR, SSIM, LPIPS on the test split every
`evalEvery` steps, and an image grid), `train_config.json`, TensorBoard logs in `logs/` and one JSON
line per step in `logs/steps.jsonl`; every file goes to `TrainerIO.publish` as it appears. A run
started again resumes from the newest checkpoint in `checkpoints/` (weights, optimizer state, step,
and the data stream's position).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genfab.api.training import StepLog, TrainConfig, TrainingState
from genfab.api.tuningrun import DifixHyperparameters as Hyper
from genfab.contract.names import ENV_GROUP_ID, latest_checkpoint
from genfab.stages.models.difix import DifixNet, PromptEncoder, load_difix
from genfab.stages.models.difix_checkpoints import (
    load_optimizer,
    load_weights,
    read_checkpoint,
    resume_step,
    save_checkpoint,
)
from genfab.stages.tuning.data import GlobalBatches, TripletDataset, collate, position_seed, read_split
from genfab.stages.tuning.launch import strangers
from genfab.stages.tuning.perceptual import Perceptual, l2_lpips_gram, load_perceptual
from genfab.stages.tuning.provenance import BUILT_IN

log = logging.getLogger("genfab.stages")
COLLECTIVE_TIMEOUT_SECONDS = 600
"""How long a collective waits for the group's other workers (checkpoint saves and evaluation on rank
0 take well under this)."""
GRAM_CROP = 400
"""Difix3D's Gram loss crop (both sides; smaller images use the whole image)."""
PROGRESS_SECONDS = 2.0


@dataclass
class TrainerIO:
    """Where the trainer's files go (`out_dir`, the run folder on local disk) and who hears about
    them: `publish(path, key)` uploads a finished file (rank 0 only), `progress(doc)` reports the
    training state."""

    out_dir: Path
    publish: Callable[[Path, str], None] = lambda path, key: None
    progress: Callable[[TrainingState], None] = lambda state: None


@dataclass
class Options:
    fast: bool = True
    compile: bool | None = None
    """None: compile when `fast` and on a GPU."""
    max_seconds: float | None = None
    """Stop (with a checkpoint) after this long."""
    final_checkpoint: bool = True
    """Write a checkpoint at the last step (benchmarks measure steps, not a 10 GB write)."""
    ddp: dict[str, Any] = field(default_factory=dict)
    """Overrides of the DDP settings (`DistributedDataParallelKwargs` fields, `comm_hook` by name,
    and `optimize_ddp` for dynamo's bucket-splitting of compiled graphs); for benchmarks."""
    sources: dict[str, str] = field(default_factory=dict)
    """Where the local inputs were staged from (`dataset`, `base_model`, `perceptual_model`: the data
    JSON's URI, the model ids): what `train_config.json` records, since the staged copies are
    temporary."""
    record: dict[str, Any] = field(default_factory=dict)
    """`trainer` and `history` (`genfab.stages.tuning.provenance`), recorded in `train_config.json`."""


@dataclass
class Result:
    step: int
    start_step: int
    losses: list[dict[str, float]] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    images_per_second: float = 0.0
    peak_memory_bytes: int = 0
    step_ends: list[float] = field(default_factory=list)
    """`time.monotonic()` at the end of each step (the loss read-back waits for the GPU)."""
    images_per_step: int = 0


def _accelerator(h: Hyper, options: Options) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import DDPCommunicationHookType, DistributedDataParallelKwargs, InitProcessGroupKwargs

    cuda = torch.cuda.is_available()
    precision = h.mixed_precision if cuda or h.mixed_precision == "bf16" else "no"
    # dynamo's DDPOptimizer splits a compiled model at every gradient bucket so communication overlaps
    # the backward pass; for this model the lost fusion costs more than the overlap saves (2 H200s,
    # 512²: 0.68 scaling efficiency split, 0.94 whole; benchmarks/results/tuning.md).
    ddp = {**({"optimize_ddp": False, "gradient_as_bucket_view": True} if options.fast else {}), **options.ddp}
    if "optimize_ddp" in ddp:
        torch._dynamo.config.optimize_ddp = ddp.pop("optimize_ddp")
    if "comm_hook" in ddp:
        ddp["comm_hook"] = DDPCommunicationHookType(ddp["comm_hook"])
    # Without a GPU accelerate forms a gloo group only when told it runs on the CPU.
    # A peer that died makes every collective of the others fail after this long (not hang for hours):
    # the node fails and the executor restarts the group from its latest checkpoint.
    group = InitProcessGroupKwargs(timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_SECONDS))
    return Accelerator(cpu=not cuda, mixed_precision=precision,
                       gradient_accumulation_steps=h.gradient_accumulation_steps,
                       kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False, **ddp), group])


def _check_group(acc: Any) -> None:
    """Every worker's peers are of its own group before any weight or sample moves: torch's
    rendezvous has no authentication, so a process of another group that reached the port (a node
    of an older attempt, anything the network let through) stops the run here, by name."""
    if acc.num_processes == 1:
        return
    from accelerate.utils import gather_object

    mine = os.environ.get(ENV_GROUP_ID, "")
    others = strangers(list(gather_object([mine])), mine)
    acc.wait_for_everyone()  # every rank has its answer before any leaves (the store's host included)
    if others:
        raise RuntimeError(f"ranks {others} joined this rendezvous from another process group (not {mine!r}); "
                           "stopping before training")


def _scheduler(h: Hyper, optimizer: torch.optim.Optimizer, start: int) -> Any:
    from diffusers.optimization import get_scheduler

    sched = get_scheduler(h.lr_scheduler, optimizer=optimizer, num_warmup_steps=h.lr_warmup_steps,
                          num_training_steps=h.max_steps)
    # The schedule's position after `start` steps (a resumed run). Stepping it before the optimizer has
    # stepped is the point here, so torch's warning about that order says nothing about this run.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        for _ in range(start):
            sched.step()
    return sched


def _resume(net: DifixNet, folder: Path) -> tuple[int, dict[str, Any] | None, Path | None]:
    found = latest_checkpoint([p.name for p in folder.glob("model_*.pkl")]) if folder.is_dir() else None
    if found is None:
        return 0, None, None
    path = folder / found[1]
    sd = read_checkpoint(path)
    load_weights(net, sd)
    return resume_step(path, sd), sd["optimizer"], path


def _gram_crop(h: Hyper, height: int, width: int, step: int) -> tuple[int, int, int, int] | None:
    if height <= GRAM_CROP or width <= GRAM_CROP:
        return None
    rng = random.Random(position_seed(h.seed, 10**12 + step))
    return rng.randint(0, height - GRAM_CROP), rng.randint(0, width - GRAM_CROP), GRAM_CROP, GRAM_CROP


def train(h: Hyper, base: Path, perceptual_dir: Path, data_json: Path, io: TrainerIO, options: Options | None = None
          ) -> Result:
    """Train (or resume) to `h.max_steps`; returns what rank 0 saw."""
    options = options or Options()
    acc = _accelerator(h, options)
    _check_group(acc)
    device = acc.device
    cuda = device.type == "cuda"
    fast = options.fast
    if cuda and fast:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(h.seed)  # the LoRA's initial weights: the same on every rank
    height, width = h.resolution, h.width
    main = acc.is_main_process
    ckpt_dir = io.out_dir / "checkpoints"

    net, prompts = load_difix(base, h.timestep, h.lora_rank_vae, device)
    perceptual: Perceptual = load_perceptual(perceptual_dir, device)
    start, optimizer_state, resumed_from = _resume(net, ckpt_dir)
    net.set_train()
    if fast:  # before the optimizer state is restored: its moments take the weights' layout
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    params = net.trainable()
    optimizer = torch.optim.AdamW(params, lr=h.learning_rate, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8,
                                  **({"fused": True} if cuda and fast else {}))
    if optimizer_state is not None:
        load_optimizer(optimizer, optimizer_state, net)
    scheduler = _scheduler(h, optimizer, start)
    model, optimizer = acc.prepare(net, optimizer)
    if options.compile if options.compile is not None else (fast and cuda):
        model = torch.compile(model)

    train_set = TripletDataset(read_split(data_json, "train"), height, width, net.latent_shape(height, width))
    test = read_split(data_json, "test")[: h.eval_samples]
    world, rank = acc.num_processes, acc.process_index
    sampler = GlobalBatches(len(train_set), h.batch_size, rank, world, h.seed, start * h.gradient_accumulation_steps)
    workers = h.dataloader_workers if fast else 0
    loader = torch.utils.data.DataLoader(
        train_set, batch_sampler=sampler, collate_fn=collate, num_workers=workers, pin_memory=cuda,
        prefetch_factor=4 if workers else None, persistent_workers=workers > 0)
    batches: Iterator[dict[str, Any]] = iter(loader)

    if main:
        _write_config(io, h, options.sources.get("base_model", str(base)),
                      options.sources.get("dataset", str(data_json)), world, len(train_set), len(test), start,
                      resumed_from, options.record)
    writer = _tensorboard(io.out_dir / "logs") if main else None
    result = Result(step=start, start_step=start, images_per_step=h.batch_size * world * h.gradient_accumulation_steps)
    if main:  # loaded and about to train: the first sign of life
        io.progress(TrainingState(step=start, max_steps=h.max_steps, checkpoints=sorted(
            p.name for p in ckpt_dir.glob("model_*.pkl"))))
    if start >= h.max_steps:
        return result
    lambdas = (h.lambda_l2, h.lambda_lpips, h.lambda_gram)
    images_per_step = h.batch_size * world * h.gradient_accumulation_steps
    began, last_report, window_t, window_images = time.monotonic(), 0.0, time.monotonic(), 0
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    step = start
    held_out: dict[str, float] = {}  # this process's evaluations: the status names the best checkpoint by them
    while step < h.max_steps:
        totals: dict[str, torch.Tensor] = {}
        for _ in range(h.gradient_accumulation_steps):
            batch = next(batches)
            x = batch["x"].to(device, non_blocking=True)
            y = batch["y"].to(device, non_blocking=True)
            noise = batch["noise"].to(device, non_blocking=True)
            if fast:
                emb = prompts(batch["prompt"], device)
            else:  # the eager baseline encodes the prompt every step, as Difix3D does
                prompts.cache.clear()
                emb = prompts(batch["prompt"], device)
            with acc.accumulate(model), acc.autocast():
                pred = model(x, emb, noise)
                losses = l2_lpips_gram(pred.flatten(0, 1), y.flatten(0, 1), perceptual, lambdas,
                                       step > h.gram_warmup_steps, _gram_crop(h, height, width, step))
                acc.backward(losses["total"])
                if acc.sync_gradients:
                    acc.clip_grad_norm_(params, h.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + v.detach() / h.gradient_accumulation_steps
        scheduler.step()
        step += 1
        window_images += images_per_step
        # One all-reduce and one host sync for every loss term.
        keys = sorted(totals)
        reduced = acc.reduce(torch.stack([totals[k].float() for k in keys]), reduction="mean").tolist()
        means = dict(zip(keys, reduced, strict=True))
        result.losses.append(means)
        result.step = step
        now = time.monotonic()
        result.step_ends.append(now)
        if main:
            rate = window_images / max(now - window_t, 1e-9)
            _log_step(io, writer, step, means, scheduler.get_last_lr()[0], rate)
        final = step == h.max_steps or (options.max_seconds is not None and now - began > options.max_seconds)
        if step % h.checkpoint_every == 0 or (final and options.final_checkpoint):
            if main:
                path = save_checkpoint(acc.unwrap_model(model), optimizer, step, ckpt_dir,
                                       {"world_size": world, "seed": h.seed, "resolution": [height, width]})
                result.checkpoints.append(path.name)
                io.publish(path, f"checkpoints/{path.name}")
            acc.wait_for_everyone()
        if step % h.eval_every == 0 or (final and options.final_checkpoint):
            if main and test:
                evaluated = _evaluate(acc.unwrap_model(model), prompts, perceptual, test, height, width, step, io,
                                      writer, acc)
                held_out[str(step)] = evaluated["psnr"]
            acc.wait_for_everyone()
        if main and (now - last_report > PROGRESS_SECONDS or final or step % h.checkpoint_every == 0):
            last_report = now
            rate = window_images / max(now - window_t, 1e-9)
            io.progress(TrainingState(
                step=step, max_steps=h.max_steps, loss=round(means["total"], 6), images_per_second=round(rate, 3),
                eta_seconds=round((h.max_steps - step) * images_per_step / max(rate, 1e-9), 1),
                checkpoints=sorted(p.name for p in ckpt_dir.glob("model_*.pkl")), held_out_psnr=held_out))
        if final:
            break
    elapsed = time.monotonic() - began
    result.images_per_second = (result.step - start) * images_per_step / max(elapsed, 1e-9)
    result.peak_memory_bytes = torch.cuda.max_memory_allocated(device) if cuda else 0
    if writer is not None:
        writer.close()
        for path in sorted((io.out_dir / "logs").glob("*")):
            if path.is_file():
                io.publish(path, f"logs/{path.name}")
    acc.wait_for_everyone()
    if acc.num_processes == 1:
        acc.end_training()
    # Several ranks: the group is not torn down here. Destroying a process group can hang a rank whose
    # peers already left (pytorch/pytorch#75097; seen here: a rank alive minutes after the last step,
    # its node heartbeating, the run never ending); every rank is past the barrier above, and the
    # worker's process ends right after (genfab.stages.tuning.worker), which releases the group.
    return result


def _tensorboard(folder: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    folder.mkdir(parents=True, exist_ok=True)
    return SummaryWriter(str(folder))


def _log_step(io: TrainerIO, writer: Any, step: int, losses: dict[str, float], learning_rate: float,
              rate: float) -> None:
    for k, v in losses.items():
        writer.add_scalar(f"train/loss_{k}", v, step)
    writer.add_scalar("train/learningRate", learning_rate, step)
    writer.add_scalar("train/images_per_second", rate, step)
    line = StepLog.of_losses(step, learning_rate, round(rate, 4), losses).to_json()
    path = io.out_dir / "logs" / "steps.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(line + "\n")


def _write_config(io: TrainerIO, h: Hyper, base: str, data_json: str, world: int, train: int, test: int,
                  start: int, resumed_from: Path | None, record: dict[str, Any]) -> None:
    config = TrainConfig.model_validate({
        "trainer": BUILT_IN, **record, "hyperparameters": h.model_dump(), "base_model": base,
        "dataset_path": data_json, "world_size": world, "train_samples": train, "test_samples": test,
        "global_batch": h.batch_size * world * h.gradient_accumulation_steps,
        "resumed_from": resumed_from.name if resumed_from else None, "start_step": start})
    path = io.out_dir / "train_config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config.to_json())
    io.publish(path, "train_config.json")


@torch.no_grad()
def _evaluate(net: DifixNet, prompts: PromptEncoder, perceptual: Perceptual, test: list[Any], height: int,
              width: int, step: int, io: TrainerIO, writer: Any, acc: Any) -> dict[str, float]:
    """PSNR, SSIM and LPIPS of the model's output (and of the degraded input, for scale) against the
    target on the test split; a grid of the first samples (input | reference | output | target)."""
    from genfab.stages.gaussians.losses import psnr, ssim

    was_training = net.training
    net.eval()
    ds = TripletDataset(test, height, width, net.latent_shape(height, width))
    sums = {"psnr": 0.0, "ssim": 0.0, "lpips": 0.0, "input_psnr": 0.0, "input_ssim": 0.0, "input_lpips": 0.0}
    rows: list[torch.Tensor] = []
    for i in range(len(ds)):
        item = ds[i]
        x, y = item["x"][None].to(acc.device), item["y"][None].to(acc.device)
        with acc.autocast():
            out = net(x, prompts([item["prompt"]], acc.device))[:, 0].float()
        target, degraded = y[:, 0].float(), x[:, 0].float()
        for prefix, img in (("", out), ("input_", degraded)):
            a, b = (img * 0.5 + 0.5).clamp(0, 1), target * 0.5 + 0.5
            sums[prefix + "psnr"] += psnr(a, b)
            sums[prefix + "ssim"] += float(ssim(a, b))
            sums[prefix + "lpips"] += float(perceptual.lpips(img, target).mean())
        if len(rows) < 4:
            ref = x[:, 1] if x.shape[1] > 1 else torch.zeros_like(degraded)
            rows.append(torch.cat([degraded, ref.float(), out, target], dim=3)[0])
    n = max(1, len(ds))
    metrics = {k: round(v / n, 5) for k, v in sums.items()}
    metrics["step"] = step
    metrics["samples"] = len(ds)
    folder = io.out_dir / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"metrics_{step:07d}.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    with (folder / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps(metrics, sort_keys=True) + "\n")
    grid = torch.cat(rows, dim=1) if rows else None
    if grid is not None:
        from PIL import Image

        arr = ((grid * 0.5 + 0.5).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        Image.fromarray(np.ascontiguousarray(arr)).save(folder / f"grid_{step:07d}.png")
        io.publish(folder / f"grid_{step:07d}.png", f"eval/grid_{step:07d}.png")
    for k in ("psnr", "ssim", "lpips"):
        writer.add_scalar(f"eval/{k}", metrics[k], step)
    io.publish(folder / f"metrics_{step:07d}.json", f"eval/metrics_{step:07d}.json")
    io.publish(folder / "metrics.jsonl", "eval/metrics.jsonl")
    if was_training:
        net.train()
    log.info("eval", extra={"step": step, **{k: metrics[k] for k in ("psnr", "ssim", "lpips")}})
    return metrics

