"""A SceneJob's curated set through the real planner, stage config and file storage: one sample per
(index, variant) with an existing image, `indices` and `variants` as the seed has them, and the seed's
no-jobs error saying what was looked for, per sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genfab.api import parse_resource
from genfab.api.scene_samples import no_jobs_message
from genfab.api.scenejob import CuratedSample
from genfab.inventory import InventoryError, resolve_samples, source_root
from genfab.planner import plan
from genfab.planner.model import stage_config
from genfab.storage import open_storage

SAMPLES: list[dict[str, Any]] = [
    {"index": 0, "prompt": "a harbour", "photorealistic": {"original_path": "photo/0.png"},
     "stylized": {"path": "style/0.png"}},
    {"index": 1, "prompt": "a forest", "photorealistic": {"original_path": "photo/1.png"}},
    {"index": 2, "prompt": "a desert", "scaffold": {"input_image": "scaffold/2.png"}},
    {"index": 3, "prompt": "a canyon"},  # only the images/index_0003.png convention
    {"index": 4, "prompt": "nothing on disk", "photorealistic": {"original_path": "photo/missing.png"}},
]
FILES = ["photo/0.png", "style/0.png", "photo/1.png", "scaffold/2.png", "images/index_0003.png"]


def dataset(tmp_path: Path, samples: list[dict[str, Any]] = SAMPLES, files: list[str] = FILES) -> Path:
    root = tmp_path / "curated_set"
    root.mkdir()
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"\x89PNG")
    (root / "metadata.json").write_text(json.dumps({"samples": samples, "version": "kept"}))
    return root


def first_stage_samples(tmp_path: Path, inp: dict[str, Any], **spec: Any) -> tuple[list[tuple[str, str | None]], str]:
    doc = {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "batch"},
           "spec": {"pipeline": "worldexplorer", "input": inp, "output": (tmp_path / "out").as_uri(), **spec}}
    p = plan(parse_resource(doc))
    cfg = stage_config(p, p.stage("scaffold"))
    refs = resolve_samples(cfg, open_storage)
    return [(r.id, r.source) for r in refs], source_root(cfg)


def test_a_manifest_gives_every_variant_and_the_fallbacks(tmp_path: Path) -> None:
    root = dataset(tmp_path)
    refs, source = first_stage_samples(tmp_path, {"manifest": (root / "metadata.json").as_uri()})
    assert source == root.as_uri()  # image paths are relative to the manifest's folder
    assert refs == [("default/index_0002", "scaffold/2.png"), ("default/index_0003", "images/index_0003.png"),
                    ("photorealistic/index_0000", "photo/0.png"), ("photorealistic/index_0001", "photo/1.png"),
                    ("stylized/index_0000", "style/0.png")]


@pytest.mark.parametrize(("spec", "expected"), [
    ({"indices": [0, 3]}, ["default/index_0003", "photorealistic/index_0000", "stylized/index_0000"]),
    ({"variants": ["stylized"]}, ["stylized/index_0000"]),
    ({"indices": [1], "variants": ["photorealistic", "default"]}, ["photorealistic/index_0001"]),
])
def test_indices_and_variants_select_jobs(tmp_path: Path, spec: dict[str, Any], expected: list[str]) -> None:
    root = dataset(tmp_path)
    refs, _ = first_stage_samples(tmp_path, {"manifest": (root / "metadata.json").as_uri()}, **spec)
    assert [i for i, _ in refs] == expected


def test_inline_samples_are_relative_to_the_dataset_uri(tmp_path: Path) -> None:
    root = dataset(tmp_path)
    refs, source = first_stage_samples(tmp_path, {"samples": SAMPLES[:2], "datasetUri": root.as_uri()})
    assert source == root.as_uri()
    assert [i for i, _ in refs] == ["photorealistic/index_0000", "photorealistic/index_0001", "stylized/index_0000"]


def test_no_jobs_says_what_was_looked_for_per_sample(tmp_path: Path) -> None:
    root = dataset(tmp_path, files=[])
    with pytest.raises(InventoryError) as caught:
        first_stage_samples(tmp_path, {"manifest": (root / "metadata.json").as_uri()})
    message = str(caught.value)
    assert message.startswith("no jobs to run: each sample needs photorealistic.original_path/path")
    assert ("index 0: photorealistic 'photo/0.png' not found; stylized 'style/0.png' not found; fallback "
            "'images/index_0000.png' not found") in message
    assert "index 2: photorealistic: no original_path/path; stylized: no original_path/path; fallback " \
           "'scaffold/2.png' or 'images/index_0002.png' not found" in message
    assert "index 4: photorealistic 'photo/missing.png' not found" in message and "more samples" not in message
    assert message.endswith(f"(dataset root {root.as_uri()})")


@pytest.mark.parametrize(("indices", "variants", "expected"), [
    ([7, 9], None, "no jobs to run: indices [7, 9] match no sample of the curated set (1 samples)"),
    (None, ["stylized"], "index 0: photorealistic 'a.png' not in variants ['stylized']; stylized: no "
                         "original_path/path"),
    (None, None, "index 0: photorealistic 'a.png' not found; stylized: no original_path/path; fallback "
                 "'images/index_0000.png' not found"),
])
def test_the_no_jobs_message_per_case(indices: list[int] | None, variants: list[str] | None, expected: str) -> None:
    sample = CuratedSample.model_validate({"index": 0, "photorealistic": {"path": "a.png"}})
    exists = (lambda p: p == "a.png") if variants else (lambda p: False)
    assert expected in no_jobs_message([sample], indices=indices, variants=variants, exists=exists)


@pytest.mark.parametrize(("content", "problem"), [
    (None, "cannot be read"),
    ("{not json", "not valid JSON"),
    (json.dumps({"samples": [{"index": -1}]}), "samples[0].index: Input should be greater than or equal to 0"),
    (json.dumps({"items": []}), "samples: Field required"),
])
def test_a_bad_manifest_is_one_line_naming_it(tmp_path: Path, content: str | None, problem: str) -> None:
    root = tmp_path / "curated_set"
    root.mkdir()
    if content is not None:
        (root / "metadata.json").write_text(content)
    with pytest.raises(InventoryError) as caught:
        first_stage_samples(tmp_path, {"manifest": (root / "metadata.json").as_uri()})
    message = str(caught.value)
    assert message.startswith(f"input.manifest {root.as_uri()}/metadata.json: ") and problem in message
    assert "\n" not in message


@pytest.mark.parametrize("stage", ["no-outpaint", "outpaint"])
def test_vistadream_reads_a_curated_set_too_and_selection_is_not_hashed(tmp_path: Path, stage: str) -> None:
    root = dataset(tmp_path)
    manifest = {"manifest": (root / "metadata.json").as_uri()}

    def first(**spec: Any) -> tuple[list[str], str]:
        doc = {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "vd"},
               "spec": {"pipeline": "vistadream", "input": manifest, "output": (tmp_path / "out").as_uri(),
                        "vistadream": {"stage": stage}, **spec}}
        p = plan(parse_resource(doc))
        cfg = stage_config(p, next(s for s in p.stages if s.run))
        return [r.id for r in resolve_samples(cfg, open_storage)], cfg.config_hash

    everything, config_hash = first()
    picked, picked_hash = first(indices=[1], variants=["photorealistic"])
    assert len(everything) == 5 and picked == ["photorealistic/index_0001"]
    assert picked_hash == config_hash  # a sample committed by one selection is reused by another


def test_two_samples_with_one_index_are_refused(tmp_path: Path) -> None:
    root = dataset(tmp_path, samples=[SAMPLES[0], {**SAMPLES[1], "index": 0}])
    with pytest.raises(InventoryError, match=r"samples\[1\]: index 0 is used by an earlier sample too"):
        first_stage_samples(tmp_path, {"manifest": (root / "metadata.json").as_uri()})
