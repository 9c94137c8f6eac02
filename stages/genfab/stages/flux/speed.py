"""Speed options of the Flux transformer (the API's `FluxRuntime`), applied once after loading.

Order matters and is fixed here: attention backend, fused QKV projections, FP8 quantisation (on the
fused weights) with the one-pass quantisation of the GELU-fed layers (`fp8_mlp`), the GELU's sigmoid
form (`gelu`) and the one-pass query/key norm and rotation (`attention`), both whenever compiling,
compilation, the first-block cache hooks, then (`compile: blocks`
without the cache) the whole step as one CUDA graph (`graph.StepGraph`). The hooks go last and `blocks`
compiles each repeated block's own `forward` (not `Module.compile`, which would trace through the
hooks): the cache's skip decision then runs in Python around compiled blocks, instead of guarding
every compiled block on the cache's state (a recompilation at each change, measured as minutes).

Each option that cannot apply says so in one line, naming the field; options that only make sense
on a GPU are skipped on the CPU (tests and laptops) without error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from genfab.api.scenejob import FluxRuntime
from genfab.stages.flux import attention, fp8_mlp, gelu, graph
from genfab.stages.runtime.errors import BadInput

log = logging.getLogger("genfab.stages")
FP8_CAPABILITY = (8, 9)
"""FP8 matmuls (`torch._scaled_mm`) need Ada or Hopper or newer."""
FP8_INDUCTOR: dict[str, Any] = {"triton.multi_kernel": 1, "fx_graph_cache": False}
"""Inductor options for the FP8 blocks: each activation's per-row amax and cast (after the layer and
modulation norms) as a persistent reduction where the row fits, chosen by timing against the looped
one (benchmarks/flux_blocks.py: `mk`; 0.06 s of a 4.7 s fill). Not splitting reductions fused the
GELU-fed layers' amax and cast, but those are `fp8_mlp`'s now, and it slowed the attention's RMS norm.

Without the FX graph cache (and so without AOTAutograd's, which needs it): torch 2.11 cannot load a
cached multi-kernel graph (`MultiKernelCall.load_cache` reads a Triton kernel's `cache_key` whose lock
is not set: "'NoneType' object does not support the context manager protocol"), so the second
compilation of the same blocks in a process (another fill object) or on a machine (a second local run)
fell back to eager. A Pod starts with an empty cache anyway."""
REWRITE_GELU = True
"""The compiled transformer computes its tanh GELU in sigmoid form (`gelu`); a switch for the benchmarks."""
FUSED_MLP = True
"""`fp8: rowwise` quantises the GELU output in one pass (`fp8_mlp`); a switch for the benchmarks."""
FUSED_ROPE = True
"""The compiled transformer's attentions norm and rotate queries and keys in one pass (`attention`); a
switch for the benchmarks."""
VAE_NORMS = True
"""With compilation on, the VAE's group norms are compiled too (`compile_group_norms`); a switch for the
benchmarks."""


EAGER = FluxRuntime(compile="off")
"""Every speed option off: diffusers' eager transformer (the benchmarks' and the CPU tests' reference)."""


@dataclass
class Applied:
    """What was applied, for the sample's marker (`params.fluxRuntime`) and the logs."""

    options: list[str] = field(default_factory=list)
    cudagraphs: bool = False
    """The transformer runs as CUDA graphs: mark each step's start (outputs are reused buffers)."""
    cache: bool = False
    """First-block cache hooks are on: each fill runs in its own cache context."""
    compiled: bool = False
    """The transformer is compiled (`compile` is not off after `compile_mode`)."""


def compile_mode(requested: str, cuda: bool, offload: str) -> tuple[str, str]:
    """The compilation that applies to a placed transformer, and why it differs from `requested`
    ("" when it does not). Offload hooks move weights inside the traced code: `group` and
    `sequential` put them on every block (dynamo stops with `Unsupported`), `model` on the whole
    transformer (its blocks still compile)."""
    if requested == "off":
        return "off", ""
    if not cuda:
        return "off", "fluxRuntime.compile is skipped on the CPU"
    if offload in ("group", "sequential"):
        return "off", (f"fluxRuntime.compile is skipped under offload {offload}: its hooks move each block's "
                       "weights in, which torch.compile cannot trace")
    if offload == "model" and requested == "full":
        return "blocks", "fluxRuntime.compile full becomes blocks under offload model (its hook moves the whole model)"
    return requested, ""


def apply(transformer: Any, options: FluxRuntime, device: torch.device, offload: str = "none"
          ) -> tuple[Any, Applied]:
    """Apply `options` to `transformer` (already placed, with `offload`) in place; returns the
    callable to denoise with (the compiled module for `compile: full`) and what was applied."""
    applied = Applied()
    cuda = device.type == "cuda"
    if options.fp8 != "off" and offload != "none":
        raise BadInput(f"fluxRuntime.fp8 does not run with offload {offload} (FP8 weights are made on the GPU); "
                       "use one or the other")
    mode, why = compile_mode(options.compile, cuda, offload)
    if why and cuda:
        log.warning(why)
    if options.attention != "native":
        try:
            transformer.set_attention_backend(options.attention)
        except (ImportError, RuntimeError, ValueError) as exc:
            raise BadInput(f"fluxRuntime.attention {options.attention!r} is not usable in this image: "
                           f"{str(exc).splitlines()[0]}") from None
        applied.options.append(f"attention={options.attention}")
    if mode != "off" or options.fp8 != "off":
        transformer.fuse_qkv_projections()  # one GEMM instead of three per attention input
        applied.options.append("fused-qkv")
    if options.fp8 != "off":
        quantize_fp8(transformer, device, options.fp8)
        applied.options.append(f"fp8={options.fp8}")
        if options.fp8 == "rowwise" and FUSED_MLP:
            fp8_mlp.install(transformer)
            applied.options.append("fp8-fused-mlp")
    applied.compiled = mode != "off"
    if applied.compiled and REWRITE_GELU:
        gelu.rewrite(transformer)
    if applied.compiled and FUSED_ROPE and attention.install(transformer):
        applied.options.append("fused-qk-norm-rope")
    denoiser = transformer
    fallback = EagerFallback()
    if mode == "blocks":
        inductor = FP8_INDUCTOR if options.fp8 != "off" else {}
        for block in repeated_blocks(transformer):
            compiled = torch.compile(block.forward, fullgraph=True, dynamic=False, options=dict(inductor))
            block.forward = guarded(block.forward, compiled, fallback)
        applied.options.append("compile=blocks")
    elif mode == "full":
        if options.first_block_cache > 0:  # the API refuses this pair; a direct caller gets the same line
            raise BadInput("fluxRuntime.firstBlockCache needs compile: blocks or off (its hooks cannot run inside "
                           "one CUDA graph of the whole transformer)")
        denoiser = guarded(transformer, torch.compile(transformer, mode="max-autotune", fullgraph=True,
                                                      dynamic=False), fallback)
        applied.cudagraphs = True
        applied.options.append("compile=full")
    if options.first_block_cache > 0:
        from diffusers.hooks.first_block_cache import FirstBlockCacheConfig

        transformer.enable_cache(FirstBlockCacheConfig(threshold=options.first_block_cache))
        applied.cache = True
        applied.options.append(f"first-block-cache={options.first_block_cache}")
    if graph.wanted(mode, cuda, offload, options.first_block_cache):
        denoiser = graph.StepGraph(denoiser)
        applied.options.append("step-cuda-graph")
    if applied.options:
        log.info("flux transformer: %s", ", ".join(applied.options))
    return denoiser, applied


class EagerFallback:
    """Shared by the compiled parts of one transformer: the first compilation that fails (no C
    compiler for Triton in a custom image, an operation dynamo cannot trace) switches all of them to
    eager, with one log line, instead of failing the stage or retrying the compilation per block."""

    def __init__(self, field: str = "fluxRuntime") -> None:
        self.active = False
        self.field = field
        """The API block named in the warning."""


def guarded(eager: Callable[..., Any], compiled: Callable[..., Any], fallback: EagerFallback) -> Callable[..., Any]:
    """`compiled` until a compilation fails, then `eager`. Compilation happens at the first call (and
    at a new input shape); only compile-time errors (dynamo's exception family) switch: errors of
    the computation itself, out of memory included, propagate unchanged."""

    def call(*args: Any, **kwargs: Any) -> Any:
        if not fallback.active:
            try:
                return compiled(*args, **kwargs)
            except torch._dynamo.exc.TorchDynamoException as exc:
                fallback.active = True
                cause = getattr(exc, "inner_exception", None) or exc  # the backend's own error, not dynamo's wrapper
                reason = f"{type(cause).__name__}: " + (str(cause).strip().splitlines() or [""])[0][:300]
                log.warning("%s.compile failed, the model runs eagerly (slower, same result): %s", fallback.field,
                            reason)
        return eager(*args, **kwargs)

    return call


def compile_group_norms(vae: Any) -> int:
    """Compile the VAE's GroupNorm layers; returns how many. PyTorch's eager GroupNorm reduces each of
    the 32 groups in one thread block: 1.4 ms per call on a 1024² feature map (32 busy SMs of 132),
    71 ms of each 1024² fill's encode and decode on an H100. Inductor splits those reductions over
    the whole GPU. Layers of one shape share a graph; after the first new shape, dynamo compiles one
    for any size (no recompilation per canvas)."""
    fallback = EagerFallback()
    norms: list[Any] = [m for m in vae.modules() if isinstance(m, torch.nn.GroupNorm)]
    for norm in norms:
        norm.forward = guarded(norm.forward, torch.compile(norm.forward, fullgraph=True), fallback)
    return len(norms)


def repeated_blocks(transformer: Any, field: str = "fluxRuntime") -> list[torch.nn.Module]:
    """The transformer's blocks of the classes diffusers marks as repeated (`_repeated_blocks`, the
    units of its regional compilation): FLUX's 19 double-stream and 38 single-stream blocks, Qwen
    Image's 60. `field` names the API block in errors."""
    names = set(getattr(transformer, "_repeated_blocks", ()))
    blocks = [m for m in transformer.modules() if type(m).__name__ in names]
    if not blocks:
        raise BadInput(f"{field}.compile blocks: {type(transformer).__name__} declares no repeated blocks; "
                       "use compile: full or off")
    return blocks


def quantize_fp8(transformer: Any, device: torch.device, granularity: str, field: str = "fluxRuntime") -> None:
    """torchao's dynamic FP8 (`rowwise`: a scale per row of activations and weights; `tensorwise`: one
    per tensor) on every linear layer whose sides fit FP8 GEMM tiles (multiples of 16); the
    embedders' odd-sized layers stay bf16."""
    if device.type != "cuda" or torch.cuda.get_device_capability(device) < FP8_CAPABILITY:
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else "the CPU"
        raise BadInput(f"{field}.fp8 needs an NVIDIA GPU of compute capability 8.9 or newer (Ada, Hopper, "
                       f"Blackwell); this stage runs on {where}: set fp8: off")
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, PerTensor, quantize_
    except ImportError:
        raise BadInput(f"{field}.fp8 needs torchao, which this stage image lacks (pip install 'genfab[diffusion]' "
                       "installs it): set fp8: off or use a genfab diffusion image") from None

    def fits(module: torch.nn.Module, _: str) -> bool:
        return isinstance(module, torch.nn.Linear) and module.in_features % 16 == 0 and module.out_features % 16 == 0

    scale = PerRow() if granularity == "rowwise" else PerTensor()
    # set_inductor_config=False: torchao's default turns on inductor's coordinate-descent tuning for the
    # whole process, which made compiling the FP8 blocks take 3-4 minutes per Pod for no measured gain
    # (benchmarks/results/vistadream.md, section 1c).
    config = Float8DynamicActivationFloat8WeightConfig(granularity=scale, set_inductor_config=False)
    quantize_(transformer, config, filter_fn=fits)
