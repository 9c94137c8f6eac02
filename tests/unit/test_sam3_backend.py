"""SAM3's backend: `segmentation.compile` is ignored on the CPU, and a short chunk padded to the
compiled shape gives the masks it gives alone (tiny random SAM3, CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_sam3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scripts.tiny_models import save_tiny_sam3

    return save_tiny_sam3(tmp_path_factory.mktemp("models"))


def backend(path: Path, compile: bool) -> object:
    from genfab.api.relighting import SegmentationConfig
    from genfab.stages.models.placement import Placement
    from genfab.stages.relighting.segment_models import Sam3Backend

    cfg = SegmentationConfig.model_validate({"backends": ["sam3"], "boxThreshold": 0.0, "compile": compile})
    return Sam3Backend(path, cfg, Placement.choose())


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40 + 8 * i, 56, 3), dtype=np.uint8) for i in range(n)]


def test_compile_is_ignored_on_the_cpu(tiny_sam3: Path) -> None:
    from genfab.stages.relighting.segment_models import COMPILED_PARTS

    sam3 = backend(tiny_sam3, compile=True)
    assert sam3.compiled is False  # type: ignore[attr-defined]
    assert all(getattr(sam3.model, part)._compiled_call_impl is None for part in COMPILED_PARTS)  # type: ignore[attr-defined]


def test_a_short_chunk_is_padded_to_the_compiled_shape_and_gives_its_own_masks(tiny_sam3: Path) -> None:
    plain, padded = backend(tiny_sam3, compile=False), backend(tiny_sam3, compile=False)
    padded.compiled = True  # type: ignore[attr-defined]  # padding as on CUDA, without compiling
    calls: list[int] = []
    run = padded._masks  # type: ignore[attr-defined]
    padded._masks = lambda batch: calls.append(len(batch)) or run(batch)  # type: ignore[attr-defined]
    padded.masks(images(4, seed=1))  # type: ignore[attr-defined]
    short = images(3)
    got, want = padded.masks(short), plain.masks(short)  # type: ignore[attr-defined]
    assert calls == [4, 4] and len(got) == 3
    assert [m is None for m in got] == [m is None for m in want]
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True) if a is not None)
    assert [m.shape for m in got if m is not None] == [i.shape[:2] for i, m in zip(short, want, strict=True)
                                                       if m is not None]
