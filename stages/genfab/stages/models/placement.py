"""Where and how a stage's models run: device, dtype and offload policy, decided once per shard.

torch is imported only when there is a model to place, so a stage whose models are all optional
(relighting's segment and degrade, with their classical fallbacks) still runs in an image without
torch."""

from __future__ import annotations

import importlib.util
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

from genfab.contract.config import Offload
from genfab.stages.runtime.errors import BadInput

Precision = Literal["auto", "bfloat16", "float16", "float32"]
_THREAD = threading.local()


@dataclass(frozen=True)
class Placement:
    device: Any
    """A `torch.device`; None in an image without torch (every load then fails with ImportError)."""
    dtype: Any
    """A `torch.dtype` (None without torch)."""
    offload: Offload
    """Diffusers pipelines only: `model` moves whole components to the GPU while they run
    (`enable_model_cpu_offload`), `group` streams groups of blocks in on a side CUDA stream ahead of
    their use (`enable_group_offload`, block level, one block per group: a few GiB on the GPU),
    `sequential` moves submodules (`enable_sequential_cpu_offload`, slowest, least memory); other
    models always live on `device`."""

    @classmethod
    def choose(cls, precision: Precision = "auto", offload: Offload = "none", require_gpu: bool = False
               ) -> Placement:
        """The GPU when there is one (bf16 by default there, float32 on the CPU)."""
        if importlib.util.find_spec("torch") is None:
            if require_gpu:
                raise BadInput("this stage needs torch and a CUDA GPU; this image has no torch")
            return cls(None, None, "none")
        import torch

        cuda = torch.cuda.is_available()
        if require_gpu and not cuda:
            raise BadInput("this stage needs a CUDA GPU; none is visible in this Pod")
        device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
        dtypes = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
        dtype = dtypes[precision] if precision != "auto" else (torch.bfloat16 if cuda else torch.float32)
        return cls(device, dtype, offload if cuda else "none")

    @property
    def cuda(self) -> bool:
        return self.device is not None and self.device.type == "cuda"

    def place(self, model: Any) -> Any:
        """Put a loaded model where it runs (honouring the offload policy for diffusers pipelines);
        torch modules switch to eval mode."""
        import torch

        if self.offload != "none" and hasattr(model, "enable_model_cpu_offload"):
            if self.offload == "model":
                model.enable_model_cpu_offload(device=self.device)
            elif self.offload == "group":
                model.enable_group_offload(onload_device=self.device, offload_type="block_level",
                                           num_blocks_per_group=1, use_stream=True)
            else:
                model.enable_sequential_cpu_offload(device=self.device)
        else:
            model = model.to(self.device)
        if isinstance(model, torch.nn.Module):
            model.eval()
        return model

    def thread_stream(self) -> AbstractContextManager[Any]:
        """This thread's own CUDA stream as the current one (created on its first use; a no-op off
        the GPU). Threads that each run whole chunks on the GPU (`CpuSampleStage`'s device threads) then
        wait only for their own work when they read a result back: another thread's forward pass keeps
        the GPU busy meanwhile, where on one shared stream every sync waits for it too."""
        if not self.cuda:
            return nullcontext()
        import torch

        streams: dict[Any, Any] = _THREAD.__dict__.setdefault("streams", {})
        if self.device not in streams:
            streams[self.device] = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
        return torch.cuda.stream(streams[self.device])

    def synchronize(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def allocated(self) -> int:
        if not self.cuda:
            return 0
        import torch

        return int(torch.cuda.memory_allocated(self.device))
