"""The lab's vistadream models through the real loading code (model location -> `from_pretrained`) with tiny
random models written by scripts/tiny_models.py, on the CPU: random weights, so these check shapes,
conventions and plumbing, never output quality."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

from scripts.tiny_models import save_tiny_depth_anything, save_tiny_depth_pro  # noqa: E402

from genfab.stages.models.location import ModelUnavailable, resolve_model  # noqa: E402
from genfab.stages.models.placement import Placement  # noqa: E402
from genfab.stages.scene import depth as models  # noqa: E402

FLUX, DEPTH_PRO, DEPTH_ANYTHING = ("black-forest-labs/FLUX.1-Fill-dev", "apple/DepthPro-hf",
                                   "depth-anything/Depth-Anything-V2-Small-hf")


@pytest.fixture(scope="module")
def location(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("models")
    save_tiny_depth_pro(root, DEPTH_PRO)
    save_tiny_depth_anything(root, DEPTH_ANYTHING)
    yield root


def path_of(location: Path, model_id: str) -> Path:
    return resolve_model(model_id, location / "cache", {"GENFAB_MODELS": str(location)})


def cpu() -> Placement:
    return Placement.choose("float32")


def test_depth_pro_gives_metric_depth_and_intrinsics_from_its_field_of_view(location: Path) -> None:
    predict = models.DepthPro(path_of(location, DEPTH_PRO), cpu(), fallback_fov=45.0)
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    result = predict(rgb)
    assert result.depth.shape == (48, 64) and result.depth.dtype == np.float32
    assert np.isfinite(result.depth).all() and (result.depth > 0).all()
    assert result.fov_source == "model" and result.fov_degrees == pytest.approx(60.0, abs=5.0)  # the stand-in's head
    focal = 32 / np.tan(np.radians(result.fov_degrees) / 2)
    np.testing.assert_allclose(result.K, [[focal, 0, 32], [0, focal, 24], [0, 0, 1]], rtol=1e-6)


def test_depth_anything_v2_uses_the_focal_prior(location: Path) -> None:
    predict = models.DepthAnythingV2(path_of(location, DEPTH_ANYTHING), cpu(), fov_degrees=90.0)
    result = predict(np.random.default_rng(2).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    assert result.depth.shape == (40, 60) and (result.depth >= 0).all()
    assert result.K[0, 0] == pytest.approx(30.0) and not predict.metric
    assert float(np.median(result.depth[result.depth > 0])) == pytest.approx(1.0, rel=0.05)


def test_a_missing_model_names_its_folder_and_how_to_fill_it(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable) as err:
        resolve_model(FLUX, tmp_path / "cache", {"GENFAB_MODELS": str(tmp_path)})
    message = str(err.value)
    assert f"{tmp_path}/black-forest-labs/FLUX.1-Fill-dev/" in message
    assert "hf download black-forest-labs/FLUX.1-Fill-dev --local-dir" in message
    assert "scripts/tiny_models.py" in message


def test_depth_pro_without_a_usable_field_of_view_falls_back_to_the_prior(location: Path) -> None:
    predict = models.DepthPro(path_of(location, DEPTH_PRO), cpu(), fallback_fov=45.0)
    with torch.no_grad():
        predict.model.fov_model.head.layers[-1].bias.fill_(-5.0)  # a head that says nothing useful
    result = predict(np.zeros((32, 32, 3), np.uint8))
    assert (result.fov_source, result.fov_degrees) == ("prior", 45.0)
    assert result.K[0, 0] == pytest.approx(16 / np.tan(np.radians(22.5)))
