"""FLUX's tanh-approximated GELU in its sigmoid form, for the compiled transformer.

0.5·x·(1 + tanh(z)) and x·sigmoid(2z) are the same function (1 + tanh(z) = 2·sigmoid(2z)). Inductor
lowers `tanh` to libdevice's `tanhf`, a branchy sequence of a few dozen instructions per element, and
`sigmoid` to one exponential and one division. Under FP8 the GELU output of every MLP (12,288 wide)
is read twice by the activation's quantisation (an amax pass and a cast pass) and the GELU is
recomputed in each: with `tanhf` those kernels are bound by instructions, not by memory
(`benchmarks/flux_blocks.py` measures it per block).

Both forms are computed in float32 and rounded once to the input's dtype, as PyTorch's own GELU
kernel does, so the results differ by float32 rounding only.
"""

from __future__ import annotations

import math
from typing import Any

import torch

TWO_SQRT_2_OVER_PI = 2.0 * math.sqrt(2.0 / math.pi)
"""2z = 2·sqrt(2/π)·(x + 0.044715·x³): the tanh argument of the approximation, doubled."""
CUBIC = 0.044715


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """`F.gelu(x, approximate="tanh")`, written with a sigmoid."""
    x32 = x.float()
    return (x32 * torch.sigmoid(TWO_SQRT_2_OVER_PI * (x32 + CUBIC * x32 * x32 * x32))).to(x.dtype)


class TanhGELU(torch.nn.Module):
    """Drop-in for `torch.nn.GELU(approximate="tanh")`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu_tanh(x)


def rewrite(transformer: torch.nn.Module) -> int:
    """Replace every tanh-approximated GELU of `transformer` in place; returns how many. Two kinds
    exist in diffusers' FLUX: `torch.nn.GELU` modules (the single blocks' `act_mlp`) and diffusers'
    `GELU` projection (the double blocks' feed-forwards), whose activation is its `gelu` method."""
    count = 0
    for parent in list(transformer.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.GELU) and child.approximate == "tanh":
                setattr(parent, name, TanhGELU())
                count += 1
            elif _projected_tanh_gelu(child):
                vars(child)["gelu"] = gelu_tanh  # an instance attribute shadows the method its forward calls
                count += 1
    return count


def _projected_tanh_gelu(module: Any) -> bool:
    return (type(module).__name__ == "GELU" and type(module).__module__.startswith("diffusers.")
            and getattr(module, "approximate", None) == "tanh" and "gelu" not in vars(module))
