"""The lab's worldexplorer variant resolution and fallback (`get_variants_for_sample`, `_resolve_input_image`)."""

from __future__ import annotations

from genfab.api.scene_samples import expand_samples
from genfab.api.scenejob import CuratedManifest

MANIFEST = CuratedManifest.model_validate({"samples": [
    {"index": 0, "photorealistic": {"original_path": "p/0.png"}, "stylized": {"path": "s/0.png"}},
    {"index": 1, "photorealistic": {"original_path": "p/missing.png"}, "scaffold": {"input_image": "scaf/1.png"}},
    {"index": 2},
    {"index": 3, "prompt": "a beach", "unknown_key": 1},
]})
FILES = {"p/0.png", "s/0.png", "scaf/1.png", "images/index_0002.png"}


def test_variants_and_fallbacks() -> None:
    jobs = expand_samples(MANIFEST.samples, exists=FILES.__contains__)
    assert [(j.index, j.variant, j.image_path) for j in jobs] == [
        (0, "photorealistic", "p/0.png"),
        (0, "stylized", "s/0.png"),
        (1, "default", "scaf/1.png"),  # variant file missing -> scaffold.input_image
        (2, "default", "images/index_0002.png"),  # images/index_XXXX.png convention
    ]  # sample 3 has nothing that exists: no job
    assert jobs[0].sample_id == "photorealistic/index_0000"


def test_filters() -> None:
    jobs = expand_samples(MANIFEST.samples, indices=[0, 2], variants=["stylized", "default"],
                          exists=FILES.__contains__)
    assert [(j.index, j.variant) for j in jobs] == [(0, "stylized"), (2, "default")]


def test_position_is_the_index_when_missing() -> None:
    manifest = CuratedManifest.model_validate({"samples": [{"stylized": {"path": "a.png"}}] * 3})
    assert [j.index for j in expand_samples(manifest.samples)] == [0, 1, 2]


def test_unknown_manifest_keys_are_kept() -> None:
    assert MANIFEST.samples[3].model_extra == {"unknown_key": 1}
