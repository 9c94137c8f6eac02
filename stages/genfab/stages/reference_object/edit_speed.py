"""genfab's Qwen Image Edit core: diffusers' pipeline with the API's `EditRuntime` applied once after
loading (`scenes.editRuntime`), in this order:

0. `dequantize` (`dequantize`, before any LoRA loads, so the LoRA fuses into bf16 weights): a
   bitsandbytes export becomes the bf16 model its 4-bit layers compute with;
1. `fp8`: torchao's dynamic FP8 on the transformer's linear layers (weights quantised on the GPU);
2. `compile: blocks`: each of the 60 `QwenImageTransformerBlock`s runs one compiled `forward` (one
   graph shared by all, like diffusers' `compile_repeated_blocks`, but on each block's own `forward`
   so the first-block cache's hooks stay outside the graphs). A compilation that fails switches the
   blocks back to eager with one log line (`flux.speed.guarded`);
3. `firstBlockCache`: diffusers' hooks;
4. `cfgTruncation`: around the transformer's `forward`, last (`CfgTruncation`).

Compilation is `dynamic=None`: the first prompt length compiles static, a second one (the negative
prompt of true CFG, another scene prompt) recompiles once with the text length dynamic, then no more.
On the CPU (tests, laptops) compilation is skipped; `fp8` there is refused with one line."""

from __future__ import annotations

import logging
from typing import Any

import torch

from genfab.api.reference_object import EditRuntime
from genfab.stages.flux.speed import FP8_INDUCTOR, EagerFallback, guarded, quantize_fp8, repeated_blocks
from genfab.stages.runtime.errors import BadInput

log = logging.getLogger("genfab.stages")
FIELD = "scenes.editRuntime"


def quantised(transformer: Any) -> bool:
    """Quantised now: loaded from a bitsandbytes export (such as `ovedrive/qwen-image-edit-4bit`) and
    not dequantised since (diffusers keeps `is_quantized` current; the config keeps saying how it
    was saved)."""
    now = getattr(transformer, "is_quantized", None)
    if now is not None:
        return bool(now)
    return getattr(transformer, "quantization_method", None) is not None or bool(
        getattr(getattr(transformer, "config", None), "quantization_config", None))


HEADROOM = 6 * 2**30
"""Free GPU memory `dequantize: auto` keeps beyond the bf16 weights: a 1024² edit's activations, the
VAE and the allocator's slack (40.4 GiB peak against 38.4 GiB held after the edits, H100)."""


def bf16_bytes(transformer: Any) -> int:
    """The transformer's weights in bf16: a 4-bit parameter counts its original shape (its quant
    state keeps it), the others as they are."""
    total = 0
    for p in transformer.parameters():
        state = getattr(p, "quant_state", None)
        total += int(state.shape.numel()) * 2 if state is not None else p.numel() * p.element_size()
    return total


def dequantize_decision(mode: str, cuda: bool, is_quantised: bool, offload: str, free: int, needed: int
                        ) -> tuple[bool, str]:
    """(dequantise?, what the sample's `editRuntime` records). `needed`: the bf16 weights plus
    HEADROOM, beyond what the 4-bit weights free when they go."""
    if not is_quantised or not cuda:
        return False, ""
    if mode == "off":
        return False, "4-bit (dequantize: off)"
    if mode == "on":
        return True, "dequantized=bf16"
    if offload != "none":
        return False, f"4-bit (dequantize: auto keeps it with offload: {offload})"
    if free < needed:
        return False, (f"4-bit (dequantize: auto: {free / 2**30:.1f} GiB free on the GPU, "
                       f"{needed / 2**30:.1f} GiB needed for bf16)")
    return True, "dequantized=bf16"


def dequantize(transformer: Any, runtime: EditRuntime, device: torch.device, offload: str = "none") -> list[str]:
    """`dequantize` on the loaded transformer, in place, before any LoRA and the other options;
    returns what was done for the sample's marker (nothing for a bf16 model or on the CPU)."""
    cuda = device.type == "cuda"
    is_quantised = quantised(transformer)
    free = needed = 0
    if cuda and is_quantised:
        free = torch.cuda.mem_get_info(device)[0]  # layer by layer, each 4-bit layer goes as its bf16 one comes
        needed = bf16_bytes(transformer) + HEADROOM
    do, note = dequantize_decision(runtime.dequantize, cuda, is_quantised, offload, free, needed)
    if do:
        transformer.dequantize()
        log.info("qwen image edit transformer: dequantized to bf16 (%.1f GiB)", (needed - HEADROOM) / 2**30)
    return [note] if note else []


class CfgTruncation:
    """diffusers' Z-Image `cfg_truncation` for Qwen Image Edit's true CFG, around the transformer's
    `forward`: once the normalised time `1 - sigma` passes `truncation`, the negative pass returns the
    step's conditional output, so the pipeline's guidance `neg + s * (cond - neg)` (and its norm
    rescale) gives the conditional prediction: that step runs without CFG, at one pass.

    diffusers' Qwen Image Edit pipelines call the transformer twice per step under true CFG, the
    conditional pass first: odd calls are negative ones. `reset` before each pipeline call."""

    def __init__(self, forward: Any, truncation: float) -> None:
        self.forward, self.truncation = forward, truncation
        self.reset()

    def reset(self) -> None:
        self.calls, self.cond, self.skipped = 0, None, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        negative = self.calls % 2 == 1
        self.calls += 1
        if negative and self.cond is not None:
            sigma = float(kwargs["timestep"].reshape(-1)[0])  # the pipeline passes t / 1000: sigma
            if 1.0 - sigma > self.truncation:
                self.skipped += 1
                return self.cond
        out = self.forward(*args, **kwargs)
        self.cond = None if negative else out
        return out


def reset(transformer: Any) -> None:
    """Start of one pipeline call (the CFG truncation counts the transformer's passes)."""
    truncation = transformer.__dict__.get("forward")
    if isinstance(truncation, CfgTruncation):
        truncation.reset()


def apply(transformer: Any, runtime: EditRuntime, device: torch.device, true_cfg: bool = True) -> list[str]:
    """Apply `runtime` to the placed `transformer` in place; returns what was applied (for the
    sample's marker and the log). `true_cfg`: the edits run true CFG (`trueCfgScale` > 1), without
    which `cfgTruncation` has nothing to truncate."""
    applied: list[str] = []
    cuda = device.type == "cuda"
    if runtime.fp8 != "off":
        if quantised(transformer):
            raise BadInput(f"{FIELD}.fp8 quantises a bf16 model; this one is already quantised "
                           "(a bitsandbytes export): set fp8: off, or point scenes.modelPath at a bf16 model")
        quantize_fp8(transformer, device, runtime.fp8, FIELD)
        applied.append(f"fp8={runtime.fp8}")
    if runtime.compile == "blocks" and cuda:
        fallback = EagerFallback()
        inductor = FP8_INDUCTOR if runtime.fp8 != "off" else {}
        for block in repeated_blocks(transformer, FIELD):
            compiled = torch.compile(block.forward, fullgraph=True, dynamic=None, options=dict(inductor))
            block.forward = guarded(block.forward, compiled, fallback)
        applied.append("compile=blocks")
    if runtime.first_block_cache > 0:
        from diffusers.hooks.first_block_cache import FirstBlockCacheConfig

        transformer.enable_cache(FirstBlockCacheConfig(threshold=runtime.first_block_cache))
        applied.append(f"first-block-cache={runtime.first_block_cache}")
    if runtime.cfg_truncation < 1.0 and true_cfg:
        transformer.forward = CfgTruncation(transformer.forward, runtime.cfg_truncation)
        applied.append(f"cfg-truncation={runtime.cfg_truncation}")
    if applied:
        log.info("qwen image edit transformer: %s", ", ".join(applied))
    return applied


def undo(transformer: Any) -> None:
    """Back to each block's and the transformer's own `forward`, without cache hooks (the benchmark
    measures several runtimes on one model; FP8 weights stay)."""
    for block in repeated_blocks(transformer, FIELD):
        block.__dict__.pop("forward", None)
    transformer.__dict__.pop("forward", None)
    if getattr(transformer, "is_cache_enabled", False):
        transformer.disable_cache()
