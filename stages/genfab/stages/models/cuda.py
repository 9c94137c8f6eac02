"""The CUDA GPU a stage needs (gsplat), asked for once, with the one line that names the stage and its
pipeline."""

from __future__ import annotations

from typing import Any

from genfab.stages.runtime.context import StageContext
from genfab.stages.runtime.errors import BadInput


def require_cuda(ctx: StageContext, why: str = "gsplat") -> Any:
    """The CUDA device of this process, or BadInput (not retried): `genfab run` refuses such a stage
    before it starts on a machine without a GPU (`StageDecl.cuda`); this is the check for everything
    else (a Pod scheduled without one, an image with a CPU-only torch). torch is imported here, so
    that the stage modules import without it."""
    import torch

    if not torch.cuda.is_available():
        raise BadInput(f"stage {ctx.stage} of pipeline {ctx.cfg.pipeline} needs a CUDA GPU ({why}); "
                       "none is visible here")
    return torch.device("cuda", torch.cuda.current_device())
