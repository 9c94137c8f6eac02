"""Which stages stream from their upstream (genfab.planner.streaming), on the examples as a lab writes them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from genfab.cli.loading import load_one
from genfab.planner import plan
from tests.helpers import ROOT

pytestmark = pytest.mark.unit


def streams(example: str, tmp: Path | None = None, **spec: object) -> dict[str, tuple[str, ...]]:
    """Each stage's `streams_from` in the example, with `spec` (camelCase) changed where given."""
    path = ROOT / "examples" / example
    if spec:
        assert tmp is not None
        doc = yaml.safe_load(path.read_text())
        doc["spec"].update(spec)
        path = tmp / example
        path.write_text(yaml.safe_dump(doc))
    resource = load_one(path).resource
    assert resource is not None
    return {s.name: s.streams_from for s in plan(resource, {"input": 16}).stages}


@pytest.mark.parametrize("example, expected", [
    # one output per upstream sample, one upstream, the same shard size: each stage takes the last one's shards
    ("scenejob-vistadream.yaml", {"outpaint": (), "depth": ("outpaint",), "gaussians": ("depth",),
                                  "coarse": ("gaussians",), "render": ("coarse",)}),
    # scaffold's samples wait for a person's choice before expansion (a manual gate): a barrier
    ("scenejob-worldexplorer-manual.yaml", {"scaffold": (), "expansion": (), "gaussians": ()}),
    # fan-outs (units), whole sets, and cv-augmentation, which holds exactly the dataset (barrier=True)
    ("datasetjob-reference-object.yaml", {"white-background": (), "perspectives": (), "prompts": (), "scenes": (),
                                          "qwen-augmentation": (), "annotation": (), "cv-augmentation": ()}),
    ("datasetjob-difix.yaml", {"export": (), "split": (), "adapter": ()}),
    # shard sizes that divide one another: 256 for the model stages, 64 for albedo and recombine
    ("datasetjob-relighting.yaml", {"segment": (), "albedo": ("segment",), "degrade": ("albedo",),
                                    "recombine": ("degrade",), "organize": ("recombine",)}),
])
def test_the_stages_that_stream(example: str, expected: dict[str, tuple[str, ...]]) -> None:
    assert streams(example) == expected


def test_a_custom_stage_or_shard_sizes_that_do_not_divide_one_another_are_a_barrier(tmp_path: Path) -> None:
    assert streams("scenejob-vistadream.yaml", tmp_path, stages={"coarse": {"shardSize": 4}})["coarse"] == (
        "gaussians",)
    assert streams("scenejob-vistadream.yaml", tmp_path, stages={"coarse": {"shardSize": 3}, "gaussians": {
        "shardSize": 2}})["coarse"] == ()  # neither size divides the other
    custom = streams("scenejob-vistadream.yaml", tmp_path, customStages=[
        {"name": "coarse", "image": "lab/coarse:1", "command": ["python", "-m", "coarse"]}])
    assert custom["coarse"] == () and custom["render"] == ()  # nor does the stage after a custom one


def test_a_stage_that_reuses_its_outputs_is_no_stream_source(tmp_path: Path) -> None:
    assert streams("scenejob-vistadream.yaml", tmp_path, onlyStages=["coarse", "render"]) == {
        "outpaint": (), "depth": (), "gaussians": (), "coarse": (), "render": ("coarse",)}
