"""Speed options of SEVA's network (the API's `SevaRuntime`), applied by the adapter once after loading.

SEVA's sampler (`seva.eval.do_sample`) runs its network under `torch.autocast("cuda")` (float16),
with the conditional and unconditional halves of classifier-free guidance already in one batch
(`VanillaCFG.prepare_inputs`): 2 x 21 frames of 72 x 72 latents per forward at 576². Nothing of SEVA's
source is changed: its modules are rewritten in place, after loading, in this order:

1. Rewrites (always, on CUDA). Every cross-attention of SEVA's network attends to one token (the
   mean CLIP embedding of the input views, `"n 1 d"`): a softmax over one key is exactly 1, so its
   output is the value projection of that token, whatever the queries. The rewrite computes
   `to_out(to_v(context))` and broadcasts it, skipping the query projection over every spatial token
   and the attention call. The self-attentions project queries, keys and values in one GEMM and run
   the SDPA kernel `attention` names (SEVA forces FlashAttention-2). Convolutions whose channel
   counts are not multiples of 8 (the network's input convolution, 11 channels in; the residual
   blocks' 1x1 camera convolutions, 6 in; the output convolution, 4 out) get zero channels up to the
   next multiple, for which cuDNN has tensor-core kernels: a zero weight times a zero input adds
   exactly nothing and the extra outputs are cut off, so each is the same convolution.
2. float16 weights (with `compile`): SEVA's checkpoint loads in bfloat16 and autocast casts every
   linear and convolution weight to float16 at each call; here they are cast once (the same values:
   the cast autocast makes), so the compiled graph reads half-precision weights directly. Norm weights
   stay as loaded (autocast runs norms in float32).
3. Compilation (`compile: model` or `all`): the whole network's forward through torch.compile
   (inductor fuses the float32 group norms, SiLUs and camera modulations of the residual blocks and
   the transformers' layouts); SEVA's chunk shape never changes (its window is always 21 frames), so
   it compiles once.
4. The autoencoder (`compile: all`): SEVA encodes every chunk's input views and decodes every chunk's
   21 frames one at a time (`encoding_t`, `decoding_t`: 1), about 300 passes of Stable Diffusion's
   VAE per 120-frame sample, each with eager PyTorch's float32 group norms (one thread block per
   group: a few of the GPU's SMs busy). Its convolutions are aligned as in step 1 (RGB in and out:
   3 channels), its linear and convolution weights cast once to float16 (what autocast casts them to
   at each call) and its `_encode` and `_decode` (one frame each, so one shape) go through
   torch.compile, on this instance only.

There is no FP8 option: SEVA's linear layers are narrow (320-1,280 inputs) next to its convolutions,
and rowwise FP8 on them was slower than float16 with a larger deviation (benchmarks/results/
worldexplorer.md, section 4). A compilation that fails falls back to eager with one log line naming
`worldexplorer.seva.runtime`.
"""

from __future__ import annotations

import copy
import logging
import types
from typing import Any

import torch

from genfab.api.scenejob import SevaRuntime
from genfab.stages.flux.speed import EagerFallback, guarded

log = logging.getLogger("genfab.stages")
FIELD = "worldexplorer.seva.runtime"
AUTOCAST_DTYPE = torch.float16
"""What SEVA's `torch.autocast("cuda")` computes linear layers and convolutions in."""


def sdpa_backends(name: str) -> list[Any]:
    from torch.nn.attention import SDPBackend

    return [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION] if name == "cudnn" else \
        [SDPBackend.FLASH_ATTENTION]


def attention_forward(backends: list[Any]) -> Any:
    """The forward of one of SEVA's `Attention` modules after `rewrite_attention`: the same
    function of (x, context), as described in the module's docstring."""
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel

    def forward(self: Any, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is not None and context.shape[1] == 1:
            # softmax over a single key is 1: the attention's output is that key's value, for every query
            value: torch.Tensor = self.to_out(self.to_v(context))  # (b, 1, c)
            return value.expand(x.shape[0], x.shape[1], value.shape[-1])
        b, n, _ = x.shape
        if context is None and hasattr(self, "to_qkv"):
            q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        else:
            source = x if context is None else context
            q, k, v = self.to_q(x), self.to_k(source), self.to_v(source)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))  # (b, heads, l, d)
        with sdpa_kernel(backends):
            out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))  # type: ignore[no-any-return]

    return forward


def is_attention(module: torch.nn.Module) -> bool:
    """One of SEVA's `seva.modules.transformer.Attention` modules (by its parts: the class is SEVA's)."""
    return type(module).__name__ == "Attention" and all(
        isinstance(getattr(module, name, None), torch.nn.Module) for name in ("to_q", "to_k", "to_v", "to_out"))


def rewrite_attention(network: torch.nn.Module, backends: list[Any]) -> int:
    """Rewrite every SEVA `Attention` in `network` in place (step 1), its attentions run by the first
    usable of the SDPA `backends`; returns how many. Self-attentions (keys from the queries' own input:
    `to_k` takes the query width) get one fused projection."""
    forward = attention_forward(backends)
    count = 0
    for module in network.modules():
        if not is_attention(module):
            continue
        part: Any = module  # SEVA's Attention: its parts are typed by its own code, not here
        q, k, v = part.to_q, part.to_k, part.to_v
        if q.in_features == k.in_features == v.in_features and q.bias is None and k.bias is None and v.bias is None:
            fused = torch.nn.Linear(q.in_features, q.out_features * 3, bias=False, device=q.weight.device,
                                    dtype=q.weight.dtype)
            with torch.no_grad():
                fused.weight.copy_(torch.cat([q.weight, k.weight, v.weight]))
            part.to_qkv = fused
        part.forward = types.MethodType(forward, module)
        count += 1
    return count


ALIGN = 8
"""Channel multiple of cuDNN's half-precision tensor-core convolutions."""


def aligned(channels: int) -> int:
    return -(-channels // ALIGN) * ALIGN


class AlignedConv2d(torch.nn.Module):
    """`conv` with its channels padded to multiples of ALIGN by zeros: the same function of its input."""

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        super().__init__()
        self.extra_in = aligned(conv.in_channels) - conv.in_channels
        self.out_channels = conv.out_channels
        out_channels, in_channels = aligned(conv.out_channels), aligned(conv.in_channels)
        padded = copy.deepcopy(conv)  # the same stride, padding, dilation; wider weights below
        padded.in_channels, padded.out_channels = in_channels, out_channels
        with torch.no_grad():
            weight = conv.weight.new_zeros(out_channels, in_channels, *conv.weight.shape[2:])
            weight[:conv.out_channels, :conv.in_channels] = conv.weight
            padded.weight = torch.nn.Parameter(weight, requires_grad=False)
            if conv.bias is not None:
                bias = conv.bias.new_zeros(out_channels)
                bias[:conv.out_channels] = conv.bias
                padded.bias = torch.nn.Parameter(bias, requires_grad=False)
        self.conv = padded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.extra_in:
            x = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, self.extra_in))
        out: torch.Tensor = self.conv(x)
        return out if out.shape[1] == self.out_channels else out[:, :self.out_channels]


def align_convolutions(network: torch.nn.Module) -> int:
    """Replace every ungrouped Conv2d with a channel count off the ALIGN multiple by an AlignedConv2d
    (step 1), in place; returns how many."""
    count = 0
    for parent in list(network.modules()):
        for name, child in list(parent.named_children()):
            if (isinstance(child, torch.nn.Conv2d) and child.groups == 1
                    and (child.in_channels % ALIGN or child.out_channels % ALIGN)):
                setattr(parent, name, AlignedConv2d(child))
                count += 1
    return count


def cast_weights(network: torch.nn.Module, dtype: torch.dtype) -> int:
    """Linear and convolution weights (and biases) in `dtype`, once (step 2); returns how many layers."""
    layers = [m for m in network.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    for layer in layers:
        layer.to(dtype)
    return len(layers)


AUTOENCODER_PASSES = ("_encode", "_decode")
"""The methods of SEVA's `AutoEncoder` that run Stable Diffusion's VAE on one chunk of frames."""


def compile_autoencoder(autoencoder: Any, fallback: EagerFallback) -> None:
    """Step 4: SEVA's `AutoEncoder` with float16 weights and its VAE passes compiled, in place (the
    compiled passes are attributes of this instance; `uncompile_autoencoder` removes them)."""
    align_convolutions(autoencoder.module)
    cast_weights(autoencoder.module, AUTOCAST_DTYPE)
    for name in AUTOENCODER_PASSES:
        eager = getattr(autoencoder, name)
        setattr(autoencoder, name, guarded(eager, torch.compile(eager, dynamic=False), fallback))


def uncompile_autoencoder(autoencoder: Any) -> None:
    """SEVA's own VAE passes again (the weights stay float16: the values autocast computes with)."""
    for name in AUTOENCODER_PASSES:
        vars(autoencoder).pop(name, None)


def apply(network: torch.nn.Module, options: SevaRuntime, device: torch.device,
          autoencoder: Any = None) -> list[str]:
    """Apply `options` to SEVA's network (`Seva`, inside its `SGMWrapper`) and, with `compile: all`,
    to SEVA's `autoencoder`, in place; returns what was applied, for the sample's marker and the log.
    SEVA samples on CUDA only (`do_sample` moves its inputs to "cuda"), so off CUDA nothing changes."""
    if device.type != "cuda":
        return []
    applied = [f"attention={options.attention}"]
    if rewrite_attention(network, sdpa_backends(options.attention)):
        applied.append("one-token-cross-attention")
    if align_convolutions(network):
        applied.append("aligned-convolutions")
    if options.compile != "off":
        cast_weights(network, AUTOCAST_DTYPE)
        applied.append("float16-weights")
        fallback = EagerFallback(FIELD)
        network.forward = guarded(network.forward, torch.compile(network.forward, fullgraph=True, dynamic=False),
                                  fallback)
        applied.append("compile=model")
        if options.compile == "all" and autoencoder is not None:
            compile_autoencoder(autoencoder, fallback)
            applied.append("compile=autoencoder")
    log.info("SEVA network: %s", ", ".join(applied))
    return applied
