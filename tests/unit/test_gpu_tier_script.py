"""scripts/gpu_tier.py's decisions, kept by CI (the script itself runs on a GPU machine): every GPU
test file is in exactly one group, and what it would carry leaves the GPU image's own packages out."""

from __future__ import annotations

import pytest
from scripts import gpu_tier


def test_every_gpu_test_file_is_in_exactly_one_group() -> None:
    gpu_tier.check_groups()  # exits naming the files otherwise
    assert set(gpu_tier.GROUPS) >= gpu_tier.RASTERIZE


def test_a_file_left_out_of_the_groups_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(gpu_tier.GROUPS, "flux", [])
    with pytest.raises(SystemExit, match=r"test_flux_gpu\.py"):
        gpu_tier.check_groups()


def test_the_closure_keeps_the_gpu_images_torch_and_follows_requirements() -> None:
    found, absent = gpu_tier.closure(["pydantic", "torch"])
    assert "pydantic" in found and "pydantic-core" in found and "annotated-types" in found
    assert "torch" not in found and "torch" not in absent  # never carried: the image's CUDA build stays
    assert gpu_tier.canonical("Typing_Extensions") == "typing-extensions"
