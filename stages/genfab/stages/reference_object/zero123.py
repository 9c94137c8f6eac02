"""Zero123++ (SUDO AI) for reference-object's step 2 with `perspectives.generator: zero123`, on its own
code: the diffusers custom pipeline its authors publish (`pipeline.py`, the hub repository
sudo-ai/zero123plus-pipeline, which their README loads with `custom_pipeline=`), read from the model
location like the weights (`perspectives.zero123Pipeline`, `zero123Model`); nothing is fetched from a
hub. Run as the README runs it: EulerAncestral with `timestep_spacing="trailing"`, a square condition
image (padded with white: the README asks for a square input), and one call that returns a 3 x 2 grid
of its six fixed views (320 x 320 each at its default 640 x 960), split row by row in the order of
`views.ZERO123_POSES`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from genfab.stages.models.placement import Placement
from genfab.stages.runtime import BadInput

PIPELINE_CLASS = "Zero123PlusPipeline"
GRID_ROWS, GRID_COLUMNS = 3, 2
PIPELINE_MARKERS = ("pipeline.py",)
"""What makes a local folder the custom pipeline's code."""


def square(rgb: np.ndarray) -> np.ndarray:
    """`rgb` centred on a white square of its longer side."""
    height, width = rgb.shape[:2]
    side = max(height, width)
    out = np.full((side, side, 3), 255, np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    out[top:top + height, left:left + width] = rgb[..., :3]
    return out


def split_grid(grid: np.ndarray, rows: int = GRID_ROWS, columns: int = GRID_COLUMNS) -> list[np.ndarray]:
    """The grid's tiles row by row (Zero123++'s view order)."""
    height, width = grid.shape[:2]
    if height % rows or width % columns:
        raise ValueError(f"a {width}x{height} grid does not split into {columns}x{rows} equal views")
    h, w = height // rows, width // columns
    return [np.ascontiguousarray(grid[r * h:(r + 1) * h, c * w:(c + 1) * w])
            for r in range(rows) for c in range(columns)]


class Zero123:
    """Zero123++ loaded once per shard."""

    def __init__(self, weights: Path, code: Path, placement: Placement, steps: int, guidance: float) -> None:
        from diffusers import DiffusionPipeline, EulerAncestralDiscreteScheduler

        # trust_remote_code: diffusers runs a local pipeline.py only when told to. The folder is the
        # user's own model location, read by their own stage Pod (no more than a custom stage can do).
        pipe: Any = DiffusionPipeline.from_pretrained(  # type: ignore[no-untyped-call]
            str(weights), custom_pipeline=str(code / "pipeline.py"), trust_remote_code=True, dtype=placement.dtype)
        if type(pipe).__name__ != PIPELINE_CLASS:
            raise BadInput(f"perspectives.zero123Pipeline {code} loads a {type(pipe).__name__}, not Zero123++'s "
                           f"{PIPELINE_CLASS} (the pipeline.py of sudo-ai/zero123plus-pipeline)")
        pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(  # type: ignore[no-untyped-call]
            pipe.scheduler.config, timestep_spacing="trailing")
        self.pipe = pipe.to(placement.device)
        self.placement, self.steps, self.guidance = placement, steps, guidance

    def views(self, rgb: np.ndarray, seed: int) -> list[np.ndarray]:
        """The six views of the object in `rgb`, in Zero123++'s order."""
        import torch

        # The authors' pipeline draws more noise than the generator's: the condition image's VAE sample and
        # the noise its reference UNet adds to it come from torch's global generators. Seeding those too
        # makes one seed one grid, so a view is the same whichever shard makes it.
        torch.manual_seed(seed)
        generator = torch.Generator(device=self.placement.device).manual_seed(seed)
        grid = self.pipe(Image.fromarray(square(rgb)), num_inference_steps=self.steps, guidance_scale=self.guidance,
                         generator=generator).images[0]
        return split_grid(np.asarray(grid.convert("RGB")))
