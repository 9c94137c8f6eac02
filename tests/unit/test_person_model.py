"""The `selfie` segmentation backend: the shipped MediaPipe person model run by OpenCV, and its GrabCut
refinement along the outline (`genfab.stages.relighting.person_model`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from genfab.api.pipelines.relighting import segment_gpus
from genfab.api.relighting import SegmentationConfig
from genfab.stages.relighting import person_model
from genfab.stages.relighting.person_model import MODEL_SHA256, SelfieBackend, band_px, refine
from tests.helpers import ROOT

PORTRAITS = ROOT / "examples" / "data" / "portraits"


@pytest.fixture(scope="module")
def backend() -> SelfieBackend:
    return SelfieBackend()


def portrait(name: str, height: int | None = None) -> np.ndarray:
    image = cv2.imread(str(next(PORTRAITS.glob(f"{name}.*"))))
    assert image is not None
    if height is not None:
        image = cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height),
                           interpolation=cv2.INTER_AREA)
    return image


def test_the_shipped_weights_are_the_file_the_notice_names() -> None:
    path = Path(person_model.__file__).parent / "weights" / person_model.MODEL_FILE
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MODEL_SHA256
    assert MODEL_SHA256 in (path.parent / "NOTICE.md").read_text()


def test_a_changed_weights_file_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    person_model.model_bytes.cache_clear()
    monkeypatch.setattr(person_model, "MODEL_SHA256", "0" * 64)
    try:
        with pytest.raises(person_model.ModelFileChanged, match=r"^genfab's shipped selfie_segmentation.tflite .* "
                                                                r"reinstall genfab$"):
            person_model.model_bytes()
    finally:
        person_model.model_bytes.cache_clear()


def test_the_probability_is_the_networks_view_of_the_picture(backend: SelfieBackend) -> None:
    image = portrait("obama")
    p = backend.probability(image)
    assert p.shape == (256, 256) and p.dtype == np.float32
    assert p.min() >= 0.0 and p.max() <= 1.0
    assert p[30:60, 110:140].mean() > 0.9  # the face (the 256² view of the 307 × 384 picture)
    assert p[100:200, 0:15].mean() < 0.1  # the flag at the left
    blank = np.full((300, 200, 3), 128, np.uint8)
    assert backend.probability(blank).mean() < 0.05  # nobody: the stage drops it as EmptyMask


def test_every_person_of_a_group_is_in_the_mask(backend: SelfieBackend) -> None:
    """Two portraits side by side, one picture: both people are found (a mask per picture, not a person)."""
    left, right = portrait("obama", 384), portrait("biden", 384)
    group = np.concatenate([left, right], axis=1)
    mask = refine(group, backend.probability(group))
    w = left.shape[1]
    for x, y in [(150, 60), (140, 200)]:  # Obama's face and chest
        assert mask[y, x]
    for x, y in [(95, 30), (88, 100)]:  # Biden's face and chest
        assert mask[y, w + x]
    assert not mask[200, 10] and not mask[60, w + 150]  # the flag beside Obama, the curtain beside Biden


@pytest.mark.parametrize("name", ["hopper", "obama"])
def test_refining_moves_the_outline_only_within_its_band(backend: SelfieBackend, name: str) -> None:
    image = portrait(name)
    p = backend.probability(image)
    up = cv2.resize(p, image.shape[1::-1], interpolation=cv2.INTER_LINEAR) > 0.5
    refined = refine(image, p)
    changed = refined != up
    assert changed.any()  # GrabCut moved the outline to the picture's edges somewhere
    distance_to_outline = np.minimum(
        cv2.distanceTransform(up.astype(np.uint8), cv2.DIST_L2, 3),
        cv2.distanceTransform((~up).astype(np.uint8), cv2.DIST_L2, 3))
    assert distance_to_outline[changed].max() <= band_px(image.shape) + 1
    assert np.array_equal(refine(image, p), refined)  # the same mask every run


def test_two_device_threads_get_the_masks_one_thread_gets(backend: SelfieBackend) -> None:
    """The stage's device threads prepare two chunks at once: an unshared net's passes mixed their inputs
    and outputs (masks of the whole picture or of nobody, different on every run)."""
    from concurrent.futures import ThreadPoolExecutor

    chunks = [[portrait(n) for n in ("hopper", "obama", "biden")], [portrait(n) for n in ("biden", "hopper")]] * 3
    alone = [backend.masks(chunk) for chunk in chunks]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(backend.masks, chunks))
    for a, b in zip(alone, together, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_nothing_to_refine_gives_the_networks_answer() -> None:
    image = portrait("hopper")
    nobody = np.zeros((256, 256), np.float32)
    assert not refine(image, nobody).any()
    everyone = np.ones((256, 256), np.float32)
    assert refine(image, everyone).all()


@pytest.mark.parametrize(("backends", "gpus"), [
    (["selfie"], 0), (["classical"], 0), (["selfie", "classical"], 0), (["sam3", "selfie"], None),
    (["sam3", "sam2"], None)])
def test_cpu_backends_alone_ask_for_no_gpu(backends: list[str], gpus: int | None) -> None:
    assert segment_gpus(SegmentationConfig.model_validate({"backends": backends})) == gpus
