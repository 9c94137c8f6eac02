"""One denoising step of the Flux transformer replayed as a CUDA graph.

With `compile: blocks` each repeated block is a compiled graph, but every step still runs Python
between them: dynamo's guards and the block wrappers for 57 blocks, the eager embedders, and, under
FP8, torchao's weight subclasses unwrapped at every call. On an H100 at 1024² that host time left the
GPU idle for about a tenth of each FP8 fill (profile in benchmarks/results/vistadream.md). Captured
once, a step is one graph launch: the same kernels in the same order (no numerical change), none of
the Python.

Captured per input shape (a job fills one or two canvas sizes), after two warm-up calls on a side
stream (compilation, autotuning, cuBLAS and cuDNN plans must not happen inside a capture). Inputs are
copied into the graph's own tensors; the output is the graph's tensor, overwritten by the next replay
(the scheduler step reads it at once). A capture that fails leaves the step uncaptured, with one log
line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger("genfab.stages")
WARMUP_CALLS = 2
"""The first compiles and autotunes; the second runs with every kernel and plan chosen."""


def wanted(mode: str, cuda: bool, offload: str, first_block_cache: float) -> bool:
    """Whether the step is captured: with `compile: blocks` on a GPU only. Offload hooks move weights
    between calls (a replay would read memory that moved); the first-block cache decides in Python at
    each step whether to run the other blocks; `full` has inductor's own CUDA graphs."""
    return mode == "blocks" and cuda and offload == "none" and first_block_cache == 0


@dataclass
class Captured:
    graph: torch.cuda.CUDAGraph
    inputs: dict[str, torch.Tensor]
    output: tuple[torch.Tensor, ...]


class StepGraph:
    """Calls `step` (the transformer, keyword arguments, `return_dict=False`) through CUDA graphs."""

    def __init__(self, step: Callable[..., Any]) -> None:
        self.step = step
        self.captured: dict[Hashable, Captured] = {}
        self.pool: Any = None
        self.failed = False

    def __call__(self, **inputs: Any) -> tuple[torch.Tensor, ...]:
        if self.failed:
            return tuple(self.step(**inputs))
        key = signature(inputs)
        captured = self.captured.get(key)
        if captured is None:
            try:
                captured = self.capture(inputs)
            except RuntimeError as exc:
                self.failed = True
                torch.cuda.synchronize()
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                log.warning("the Flux step could not be captured as a CUDA graph, it runs uncaptured "
                            "(same result, more host time): %s", reason)
                return tuple(self.step(**inputs))
            self.captured[key] = captured
        for name, tensor in captured.inputs.items():
            tensor.copy_(inputs[name])
        captured.graph.replay()
        return captured.output

    def capture(self, inputs: dict[str, Any]) -> Captured:
        static = {name: value.clone() if isinstance(value, torch.Tensor) else value for name, value in inputs.items()}
        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                self.step(**static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            output = tuple(self.step(**static))
        self.pool = graph.pool()  # graphs of other shapes share one memory pool (they never run at once)
        log.info("flux step captured as a CUDA graph for %s", shapes(static))
        tensors = {name: value for name, value in static.items() if isinstance(value, torch.Tensor)}
        return Captured(graph, tensors, output)


def signature(inputs: dict[str, Any]) -> Hashable:
    """What a captured graph is specific to: each tensor's shape, dtype and device, every other value."""
    return tuple(sorted((name, (tuple(v.shape), v.dtype, v.device) if isinstance(v, torch.Tensor) else repr(v))
                        for name, v in inputs.items()))


def shapes(inputs: dict[str, Any]) -> str:
    return ", ".join(f"{name} {tuple(v.shape)}" for name, v in inputs.items() if isinstance(v, torch.Tensor))
