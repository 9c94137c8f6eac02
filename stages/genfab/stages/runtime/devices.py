"""The GPU a stage needs, asked for once, with the one line that names the stage and its pipeline."""

from __future__ import annotations

from typing import Any

from genfab.stages.runtime.context import StageContext
from genfab.stages.runtime.errors import BadInput


def require_cuda(ctx: StageContext, why: str = "gsplat") -> Any:
    """The CUDA device of this process, or BadInput (exit 2, not retried): `genfab run` refuses such a
    stage before anything starts on a machine without a GPU; this is the check for everything else
    (a Pod scheduled without one, an image with a CPU-only torch). Import torch late: the runtime
    itself runs without it."""
    import torch

    if not torch.cuda.is_available():
        raise BadInput(f"stage {ctx.stage} of pipeline {ctx.cfg.pipeline} needs a CUDA GPU ({why}); "
                       "none is visible here")
    return torch.device("cuda", torch.cuda.current_device())
