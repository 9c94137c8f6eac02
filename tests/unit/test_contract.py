"""The stage contract's pure parts: shard slices, the mounted config, the shard env."""

from __future__ import annotations

import json

import pytest

from genfab.api import parse_resource
from genfab.contract import ContractError, StageConfig, layout_dir, report_key, sample_subdir, shard_bounds, shard_count
from genfab.contract.names import ENV_INDEX, ENV_SHARDS
from genfab.planner import Plan, PlannedStage, plan, stage_config
from tests.helpers import load_example


@pytest.mark.parametrize(("total", "shards", "expected"), [
    (10, 1, [(0, 10)]),
    (10, 3, [(0, 3), (3, 6), (6, 10)]),
    (4, 2, [(0, 2), (2, 4)]),
    (2, 4, [(0, 0), (0, 1), (1, 1), (1, 2)]),
    (0, 1, [(0, 0)]),
])
def test_shard_bounds_partition_every_sample_once(total: int, shards: int, expected: list[tuple[int, int]]) -> None:
    bounds = [shard_bounds(total, i, shards) for i in range(shards)]
    assert bounds == expected
    assert sum(b - a for a, b in bounds) == total


@pytest.mark.parametrize(("index", "shards"), [(-1, 2), (2, 2), (0, 0)])
def test_shard_bounds_rejects_bad_indexes(index: int, shards: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        shard_bounds(5, index, shards)


@pytest.mark.parametrize(("samples", "shard_size", "fixed", "expected"), [
    (0, 8, None, 1),
    (8, 8, None, 1),
    (9, 8, None, 2),
    (100, 8, 1, 1),
    (1, 1, 4, 4),
])
def test_shard_count(samples: int, shard_size: int, fixed: int | None, expected: int) -> None:
    assert shard_count(samples, shard_size, fixed) == expected


def test_stage_config_and_env_carry_the_whole_contract() -> None:
    doc = load_example("datasetjob-custom-stage.yaml")
    p = plan(parse_resource(doc))
    seg, sheet = p.stage("segment"), p.stage("contact-sheet")
    cfg = stage_config(p, sheet).to_dict()
    assert cfg["stage"] == "contact-sheet" and cfg["family"] == "custom" and cfg["pipeline"] == "relighting"
    assert cfg["configHash"] == sheet.config_hash and cfg["runUri"] == p.output_uri
    assert cfg["upstream"] == [{"name": "segment", "configHash": seg.config_hash, "outputUri": seg.output_uri}]
    assert cfg["resource"] == {"kind": "DatasetJob", "name": "portraits-custom", "namespace": None}
    first = stage_config(p, seg)
    assert first.input_uris == ("file://./examples/data/portraits",)
    assert first.selection.suffixes == (".png", ".jpg", ".jpeg", ".webp")
    assert first.config["custom"] == {"margin": 0.08, "iterations": 3, "feather": 7}  # beside the built-in's
    assert StageConfig.from_json(first.to_json()) == first  # the JSON form round-trips
    env = first.shard_env(1, 2)
    assert env[ENV_INDEX] == "1" and env[ENV_SHARDS] == "2"
    assert env["GENFAB_OUTPUT_URI"] == seg.output_uri == "file://./genfab-runs/portraits-custom/data/stage_1"
    assert report_key("segment", seg.config_hash, 3).endswith(f"segment/{seg.config_hash[:10]}/shard-00003.json")


def test_relighting_selection_is_in_the_contract_but_not_the_hash() -> None:
    doc = load_example("datasetjob-relighting.yaml")
    base = plan(parse_resource(doc)).stage("segment")
    doc["spec"]["relighting"]["numSamples"] = 2
    doc["spec"]["relighting"]["input"]["sampleIds"] = ["astronaut", "astronaut_face"]
    changed = plan(parse_resource(doc)).stage("segment")
    assert changed.selection == {"ids": ["astronaut", "astronaut_face"], "limit": 2}
    assert changed.config_hash == base.config_hash  # picking samples does not change a committed sample


@pytest.mark.parametrize(("change", "message"), [
    ({"contract": 99}, "contract version 99 is not 1"),
    ({"configHash": None}, "configHash"),
    ({"selection": {"ids": ["../x"]}}, r"selection\.ids\.0"),
])
def test_a_stage_config_off_the_contract_is_refused_with_the_field(change: dict[str, object], message: str) -> None:
    good = stage_config(*_first_stage()).to_dict()
    with pytest.raises(ContractError, match=message):
        StageConfig.from_json(json.dumps({**good, **change}))


def _first_stage() -> tuple[Plan, PlannedStage]:
    p = plan(parse_resource(load_example("datasetjob-relighting.yaml")))
    return p, p.stages[0]


@pytest.mark.parametrize(("layout", "subdir"), [
    ("{variant}/index_{index:04d}/scenes/gaussians/", "scenes/gaussians/"),
    ("{sample}/gaussians/", "gaussians/"),
    ("{sample}/", ""),
])
def test_a_per_sample_layout_names_the_folder_inside_each_sample(layout: str, subdir: str) -> None:
    assert layout_dir(layout) == ""  # per-sample layouts write under the run root
    assert sample_subdir(layout) == subdir
