"""worldexplorer's automatic selection: CLIP scores (torchmetrics' definition) pick the candidate
closest to the gap's prompt. The constructed case checks the choice; the tiny random CLIP of
scripts/tiny_models.py checks the real loading and embedding code against CLIPModel's own logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genfab.stages.worldexplorer.clip_select import choose, clip_scores

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from scripts.tiny_models import save_tiny_clip  # noqa: E402

from genfab.stages.models.placement import Placement  # noqa: E402
from genfab.stages.worldexplorer.clip_select import ClipScorer  # noqa: E402


def test_the_candidate_whose_embedding_points_at_the_prompt_wins() -> None:
    text = np.array([2.0, 0.0, 0.0])
    images = np.array([[0.0, 1.0, 0.0], [1.0, 0.1, 0.0], [-1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    scores = clip_scores(images, text)
    np.testing.assert_allclose(scores, [0.0, 100 / np.sqrt(1.01), 0.0, 100 / np.sqrt(2)], rtol=1e-9)
    assert scores[2] == 0.0  # opposite: floored at 0, as CLIPScore
    picked = choose(list(scores))
    assert picked.best == 1 and picked.scores[1] == pytest.approx(99.5037, abs=1e-4)


def test_equal_scores_keep_the_first_candidate_and_none_is_an_error() -> None:
    assert choose([3.0, 7.0, 7.0]).best == 1
    with pytest.raises(ValueError, match="no candidates"):
        choose([])


def test_tiny_clip_scores_equal_clipmodels_own_logits(tmp_path: Path) -> None:
    from transformers import CLIPModel

    path = save_tiny_clip(tmp_path)
    scorer = ClipScorer(path, Placement(torch.device("cpu"), torch.float32, "none"))
    rng = np.random.default_rng(0)
    candidates = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(5)]
    text = "kitchen and office"
    picked = scorer.choose(candidates, text)

    model = CLIPModel.from_pretrained(path).eval()
    pixels = scorer.preprocess([c[..., ::-1] for c in candidates], torch.device("cpu"), torch.float32)
    tokens = scorer.tokenizer([text], padding=True, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        logits = model(pixel_values=pixels, **tokens).logits_per_image[:, 0]
        expected = np.maximum((logits / model.logit_scale.exp()).numpy() * 100.0, 0.0)
    np.testing.assert_allclose(picked.scores, expected, atol=1e-3)
    assert picked.best == int(np.argmax(expected))
