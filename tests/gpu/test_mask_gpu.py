"""GPU tier: `genfab mask`'s SAM2 path on the real sam2 package (the CPU tier runs it on sam2's
stand-in): a tiny random SAM2.1 from the model location through the labeler's own loading and
prompting (points, a negative point, a box), SAM2ImagePredictor's three masks and scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("sam2.sam2_image_predictor")


def test_the_labelers_sam2_path_runs_sam2s_own_predictor(tmp_path: Path) -> None:
    from sam2.sam2_image_predictor import SAM2ImagePredictor
    from scripts.tiny_models import save_tiny_sam2

    from genfab.stages.reference_object import mask_labeler as labeler

    folder = save_tiny_sam2(tmp_path / "models")
    assert labeler.sam2_folder(labeler.SAM2_DEFAULT, f"file://{tmp_path / 'models'}", tmp_path) == folder
    rgb = np.full((160, 200, 3), 245, np.uint8)
    rgb[40:120, 60:140] = (230, 120, 30)
    prompts = labeler.Prompts(((100.0, 80.0), (10.0, 10.0)), (1, 0), (50.0, 30.0, 150.0, 130.0))
    prompts.check(200, 160)
    seen: list[object] = []
    original = SAM2ImagePredictor.predict

    def spy(self: SAM2ImagePredictor, *args: object, **kwargs: object) -> object:
        seen.append(type(self))
        return original(self, *args, **kwargs)

    SAM2ImagePredictor.predict = spy  # type: ignore[method-assign]
    try:
        mask, score = labeler.sam2_mask(rgb, prompts, folder)
    finally:
        SAM2ImagePredictor.predict = original  # type: ignore[method-assign]
    assert seen == [SAM2ImagePredictor]  # sam2's own predictor, not a stand-in
    assert mask.shape == (160, 200) and mask.dtype == bool and isinstance(score, float)
    print(f"\nSAM2 (tiny, random) through genfab mask's labeler: score {score:.3f}, object {mask.mean():.1%}")
