"""GPU tier: reference-object's Zero123++ on its authors' own code, the diffusers custom pipeline
(`pipeline.py`, SUDO-AI-3D/zero123plus at the commit scripts/gpu_tier.py's PIPELINE_CODE names, fetched
by `--prepare-research --package zero123plus`), not the stand-in of tests/fakes/zero123plus-pipeline.
Zero123++ v1.2 at production size with random bf16 weights (no weights can be downloaded): its
components' parameter counts are v1.2's, the call runs through the authors' reference-attention UNet and
returns the 3 x 2 grid, split into six 320 x 320 views; the pictures mean nothing."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)

from scripts.gpu_tier import PIPELINE_CODE, RESEARCH  # noqa: E402
from scripts.tiny_models import save_zero123  # noqa: E402

from genfab.stages.models.placement import Placement  # noqa: E402
from tests.helpers import PORTRAIT  # noqa: E402

CODE = RESEARCH / "pipelines" / "zero123plus-pipeline" / PIPELINE_CODE["zero123plus-pipeline"][2] / "pipeline.py"
V12_PARAMETERS = {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840, "vision_encoder": 632_076_800}
"""sudo-ai/zero123plus-v1.2's components, counted on the released model (its parameter report)."""


def test_zero123_runs_its_authors_pipeline_at_production_size(tmp_path: Path) -> None:
    if not CODE.is_file():
        pytest.skip("needs Zero123++'s pipeline.py: scripts/gpu_tier.py --prepare-research --package zero123plus")
    import cv2

    from genfab.stages.common.imaging import decode_png
    from genfab.stages.reference_object.zero123 import Zero123

    weights = save_zero123(tmp_path / "models", production=True)
    code = tmp_path / "models" / "sudo-ai" / "zero123plus-pipeline"
    code.mkdir(parents=True)
    shutil.copy(CODE, code / "pipeline.py")
    zero123 = Zero123(weights, code, Placement(torch.device("cuda"), torch.bfloat16, "none"), steps=4, guidance=4.0)
    pipe = zero123.pipe
    assert type(pipe).__name__ == "Zero123PlusPipeline" and type(pipe).__module__ != "pipeline"  # theirs, loaded
    counts = {name: sum(p.numel() for p in getattr(pipe, name).parameters()) for name in V12_PARAMETERS}
    assert counts == V12_PARAMETERS
    assert type(pipe.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert pipe.scheduler.config.timestep_spacing == "trailing"
    rgb = cv2.resize(decode_png(PORTRAIT.read_bytes())[..., :3], (400, 320))
    zero123.views(rgb, 0)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    views = zero123.views(rgb, 7)
    torch.cuda.synchronize()
    seconds, peak = time.perf_counter() - started, torch.cuda.max_memory_allocated() / 2**30
    assert len(views) == 6 and all(v.shape == (320, 320, 3) and v.dtype == np.uint8 for v in views)
    assert type(pipe.unet).__name__ == "RefOnlyNoisedUNet"  # the authors' reference-attention UNet ran
    again = zero123.views(rgb, 7)
    assert all(np.array_equal(a, b) for a, b in zip(views, again, strict=True))  # one seed, one grid
    report = {"steps": 4, "seconds": round(seconds, 2), "peakGiB": round(peak, 2), "parameters": sum(counts.values())}
    print(f"\nZero123++ v1.2 (random weights) through its own pipeline: {json.dumps(report)}")
