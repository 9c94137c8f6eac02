"""Planner table tests: every seed pipeline and stage selection, sharding, config hashes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from genfab.api import parse_resource
from genfab.planner import INPUT, Plan, PlanError, plan
from tests.helpers import load_example

Doc = dict[str, Any]


def _plan(example: str, mutate: Callable[[Doc], None] = lambda d: None,
          inventory: dict[str, int] | None = None) -> Plan:
    doc = load_example(example)
    mutate(doc)
    return plan(parse_resource(doc), inventory)


def _spec(**changes: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        for dotted, value in changes.items():
            node = doc["spec"]
            keys = dotted.split("__")
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            node[keys[-1]] = value

    return mutate


def _edges(p: Plan) -> list[tuple[str, tuple[str, ...]]]:
    return [(s.name, s.upstream) for s in p.stages]


VD = "scenejob-vistadream.yaml"
WE = "scenejob-worldexplorer.yaml"
PIPELINE_TABLE = [
    ("worldexplorer", "scenejob-worldexplorer.yaml", _spec(),
     [("scaffold", ()), ("expansion", ("scaffold",)), ("gaussians", ("expansion",))]),
    ("vistadream no-outpaint", VD, _spec(vistadream__stage="no-outpaint"),
     [("depth", ()), ("gaussians", ("depth",)), ("render", ("gaussians",))]),
    ("vistadream outpaint", VD, _spec(vistadream__stage="outpaint"),
     [("outpaint", ()), ("depth", ("outpaint",)), ("gaussians", ("depth",)), ("render", ("gaussians",))]),
    ("vistadream fine", VD, _spec(vistadream__stage="fine"),
     [("outpaint", ()), ("depth", ("outpaint",)), ("gaussians", ("depth",)), ("render", ("gaussians",))]),
    ("vistadream coarse", VD, _spec(vistadream__stage="coarse"),
     [("outpaint", ()), ("depth", ("outpaint",)), ("gaussians", ("depth",)), ("coarse", ("gaussians",)),
      ("render", ("coarse",))]),
    ("relighting", "datasetjob-relighting.yaml", _spec(),
     [("segment", ()), ("albedo", ("segment",)), ("degrade", ("albedo",)), ("recombine", ("degrade",)),
      ("organize", ("recombine",))]),
    ("relighting + captions", "datasetjob-relighting.yaml", _spec(relighting__captioning={"enabled": True}),
     [("segment", ()), ("albedo", ("segment",)), ("degrade", ("albedo",)), ("recombine", ("degrade",)),
      ("caption", ("recombine",)), ("organize", ("recombine", "caption"))]),
    ("reference-object all steps", "datasetjob-reference-object.yaml", _spec(),
     [("white-background", ()), ("perspectives", ("white-background",)), ("prompts", ("perspectives",)),
      ("scenes", ("perspectives", "prompts")), ("qwen-augmentation", ("scenes",)),
      ("annotation", ("scenes", "qwen-augmentation")), ("cv-augmentation", ("annotation",))]),
    ("reference-object no optional steps", "datasetjob-reference-object.yaml",
     _spec(referenceObject__qwenAugmentation={"enabled": False},
           referenceObject__cvAugmentation={"enabled": False}),
     [("white-background", ()), ("perspectives", ("white-background",)), ("prompts", ("perspectives",)),
      ("scenes", ("perspectives", "prompts")), ("annotation", ("scenes",))]),
    ("difix", "datasetjob-difix.yaml", _spec(),
     [("export", ()), ("split", ("export",)), ("adapter", ("split",))]),
    ("tuning", "tuningrun-difix.yaml", _spec(), [("train", ())]),
]


@pytest.mark.parametrize(("label", "example", "mutate", "edges"), PIPELINE_TABLE, ids=[r[0] for r in PIPELINE_TABLE])
def test_pipeline_dag(label: str, example: str, mutate: Callable[[Doc], None], edges: list[Any]) -> None:
    assert _edges(_plan(example, mutate)) == edges


def test_first_stage_reads_the_job_input_when_outpaint_is_skipped() -> None:
    p = _plan(VD, _spec(vistadream__stage="no-outpaint"))
    assert p.stage("depth").input_uris == ("s3://genfab-data/office/IMG_4029.jpg",)
    p = _plan(VD, _spec(vistadream__stage="coarse"))
    assert p.stage("depth").input_uris == (p.stage("outpaint").output_uri,)


SELECTION_TABLE = [
    ("only 3 (seed 000 --only_stages 3)", "scenejob-worldexplorer.yaml", _spec(onlyStages=["gaussians"]),
     {"scaffold": False, "expansion": False, "gaussians": True}),
    ("only 1,2", "scenejob-worldexplorer.yaml", _spec(onlyStages=["scaffold", "expansion"]),
     {"scaffold": True, "expansion": True, "gaussians": False}),
    ("start from step 6", "datasetjob-reference-object.yaml", _spec(referenceObject__startFromStep=6),
     {"white-background": False, "perspectives": False, "prompts": False, "scenes": False,
      "qwen-augmentation": False, "annotation": True, "cv-augmentation": True}),
    ("retry failed step 4", "datasetjob-reference-object.yaml", _spec(referenceObject__retry={"retryFailed": True}),
     {"white-background": False, "perspectives": False, "prompts": False, "scenes": True,
      "qwen-augmentation": False, "annotation": False, "cv-augmentation": False}),
    ("retry failed step 5", "datasetjob-reference-object.yaml",
     _spec(referenceObject__retry={"retryFailedQwenAugmentations": True}),
     {"white-background": False, "perspectives": False, "prompts": False, "scenes": False,
      "qwen-augmentation": True, "annotation": False, "cv-augmentation": False}),
]


@pytest.mark.parametrize(("label", "example", "mutate", "runs"), SELECTION_TABLE, ids=[r[0] for r in SELECTION_TABLE])
def test_stage_selection(label: str, example: str, mutate: Callable[[Doc], None], runs: dict[str, bool]) -> None:
    assert {s.name: s.run for s in _plan(example, mutate).stages} == runs


def test_retry_mode_is_an_option_not_part_of_the_hash() -> None:
    base = _plan("datasetjob-reference-object.yaml")
    retry = _plan("datasetjob-reference-object.yaml", _spec(referenceObject__retry={"retryFailed": True}))
    assert retry.stage("scenes").options["retryFailedOnly"] is True
    assert [s.config_hash for s in base.stages] == [s.config_hash for s in retry.stages]


def test_sample_counts_and_shards() -> None:
    ro = _plan("datasetjob-reference-object.yaml")  # 4 views x 10 prompts x 1 iteration, 2 qwen, 2 cv
    assert [(s.name, s.samples, s.shards) for s in ro.stages] == [
        ("white-background", 1, 1), ("perspectives", 4, 1), ("prompts", 1, 1), ("scenes", 40, 5),
        ("qwen-augmentation", 80, 10), ("annotation", 120, 2), ("cv-augmentation", 240, 4)]
    zero123 = _plan("datasetjob-reference-object.yaml", _spec(referenceObject__perspectives={"generator": "zero123"}))
    assert zero123.stage("perspectives").samples == 6 and zero123.stage("scenes").samples == 60


def test_manifest_counts_come_from_the_inventory_and_packing_sets_the_shard_size() -> None:
    we = _plan("scenejob-worldexplorer.yaml")
    assert we.stage("gaussians").samples is None and we.stage("gaussians").shards is None
    we = _plan("scenejob-worldexplorer.yaml", inventory={INPUT: 10})
    scaffold, gaussians = we.stage("scaffold"), we.stage("gaussians")
    assert (scaffold.shards, gaussians.shard_size, gaussians.shards) == (2, 4, 3)  # 8 samples per scaffold Pod


def test_shard_size_precedence() -> None:
    p = _plan("datasetjob-relighting.yaml", _spec(shardSize=5, stages={"albedo": {"shardSize": 2}}),
              inventory={INPUT: 10})
    assert (p.stage("segment").shards, p.stage("albedo").shards) == (1, 2)  # numSamples caps 10 -> 3
    p = _plan("datasetjob-relighting.yaml", _spec(relighting__numSamples=None, shardSize=4), inventory={INPUT: 10})
    assert p.stage("segment").shards == 3


def test_inline_samples_expand_variants_and_indices() -> None:
    samples = [
        {"index": 0, "photorealistic": {"original_path": "a.png"}, "stylized": {"path": "a_s.png"}},
        {"index": 1, "scaffold": {"input_image": "b.png"}},
        {"index": 2, "stylized": {"original_path": "c.png"}},
    ]
    mutate = _spec(input={"samples": samples, "datasetUri": "s3://genfab-data/set"}, indices=[0, 1, 2],
                   variants=None)
    assert _plan("scenejob-worldexplorer.yaml", mutate).stage("scaffold").samples == 4
    mutate_sel = _spec(input={"samples": samples, "datasetUri": "s3://genfab-data/set"}, indices=[0, 2],
                       variants=["stylized"])
    assert _plan("scenejob-worldexplorer.yaml", mutate_sel).stage("gaussians").samples == 2


def test_resources_layering_and_tuning_gpus() -> None:
    we = _plan("scenejob-worldexplorer.yaml")
    exp = we.stage("expansion").resources
    assert exp.memory == "80Gi" and exp.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert exp.tolerations == ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
    tr = _plan("tuningrun-difix.yaml")
    assert (tr.stage("train").resources.gpus, tr.stage("train").shards) == (4, 2)
    assert tr.external_refs == ("DatasetJob/difix-hi4d-v1",)


def test_custom_stages_replace_in_place_or_append() -> None:
    we = _plan("scenejob-worldexplorer.yaml", _spec(customStages=[
        {"name": "scaffold", "image": "lab/seva-fork:2025.06", "command": ["python", "-m", "seva_stage"]}]))
    assert we.stage("scaffold").family == "custom" and we.stage("scaffold").image.endswith("seva-fork:2025.06")
    assert "scaffold" in we.stage("scaffold").config  # the built-in parameters still reach the image
    extra = _plan("scenejob-worldexplorer.yaml", _spec(customStages=[
        {"name": "mesh", "image": "lab/mesh:1"},
        {"name": "thumbs", "image": "lab/thumbs:1", "after": ["gaussians"]},
    ]))
    assert _edges(extra)[-2:] == [("mesh", ("gaussians",)), ("thumbs", ("gaussians",))]
    assert extra.stage("mesh").output_uri.endswith("/batch/mesh")


def test_custom_stage_cycle_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="cycle"):
        _plan("scenejob-worldexplorer.yaml", _spec(customStages=[
            {"name": "a-stage", "image": "x:1", "after": ["b-stage"]},
            {"name": "b-stage", "image": "x:1", "after": ["a-stage"]},
        ]))


# -- config hashes ---------------------------------------------------------------------------------

def _hashes(p: Plan) -> dict[str, str]:
    return {s.name: s.config_hash for s in p.stages}


def _changed(example: str, mutate: Callable[[Doc], None]) -> set[str]:
    before, after = _hashes(_plan(example)), _hashes(_plan(example, mutate))
    assert before.keys() == after.keys()
    return {n for n in before if before[n] != after[n]}


HASH_TABLE = [
    ("3dgs steps -> nothing of vistadream (its scene-growing stages do not read them)", VD,
     _spec(gaussians__steps=7000), set()),
    ("3dgs steps -> worldexplorer's gaussians", WE, _spec(gaussians__steps=7000), {"gaussians"}),
    ("sh degree -> vistadream's scene from gaussians on", VD, _spec(gaussians__shDegree=2),
     {"gaussians", "coarse", "render"}),
    ("coarse ratio -> coarse and render", VD, _spec(vistadream__coarseMaxInpaintRatio=0.3), {"coarse", "render"}),
    ("expansion percent -> everything from outpaint", VD, _spec(vistadream__expansionPercent=0.3),
     {"outpaint", "depth", "gaussians", "coarse", "render"}),
    ("input image -> everything", VD, _spec(input={"image": "s3://genfab-data/other.jpg"}),
     {"outpaint", "depth", "gaussians", "coarse", "render"}),
    ("refinement checkpoint -> worldexplorer's gaussians", WE,
     _spec(refinement={"checkpointUri": "s3://genfab-out/model_1000.pkl"}), {"gaussians"}),
    ("albedo blend -> albedo and downstream", "datasetjob-relighting.yaml",
     _spec(relighting__albedo={"blend": {"min": 0.1, "max": 0.2}}), {"albedo", "degrade", "recombine", "organize"}),
    ("degradation weights -> degrade and downstream", "datasetjob-relighting.yaml",
     _spec(relighting__degradation={"weights": {"softShading": 1.0, "ambientOnly": 0.0}}),
     {"degrade", "recombine", "organize"}),
    ("split seed -> split and adapter", "datasetjob-difix.yaml", _spec(difix__split={"seed": 7}), {"split", "adapter"}),
    ("split ratio -> split and adapter", "datasetjob-difix.yaml", _spec(difix__split={"trainRatio": 0.8}),
     {"split", "adapter"}),
    ("reference view -> the whole difix export", "datasetjob-difix.yaml",
     _spec(difix__referenceView={"strategy": "random-camera"}), {"export", "split", "adapter"}),
    ("cv probabilities -> cv-augmentation only", "datasetjob-reference-object.yaml",
     _spec(referenceObject__cvAugmentation={"probabilities": {"bw": 0.1}}), {"cv-augmentation"}),
    ("stage image override -> that stage and downstream", VD, _spec(stages={"depth": {"image": "lab/depth:2"}}),
     {"depth", "gaussians", "coarse", "render"}),
    ("adding a scene -> adapter (the export reuses every committed scene; split sees the new set)",
     "datasetjob-difix.yaml", lambda d: d["spec"]["difix"]["sources"][0]["scenes"].append("pair02_talk"), {"adapter"}),
    ("learning rate -> train", "tuningrun-difix.yaml", _spec(hyperparameters={"learningRate": 1e-5}), {"train"}),
]

UNRELATED = [
    ("retries", _spec(retries=5)),
    ("parallelism", _spec(parallelism=3)),
    ("shard size", _spec(shardSize=2)),
    ("resources", _spec(resources={"gpus": 2, "memory": "64Gi"})),
    ("stage resources", _spec(stages={"gaussians": {"gpus": 2}})),
    ("suspend", _spec(suspend=True)),
    ("queue", _spec(queueName="other-queue")),
    ("ttl", _spec(ttlSecondsAfterFinished=60)),
    ("continue on error", _spec(continueOnError=True)),
    ("only stages", _spec(onlyStages=["render"])),
    ("storage endpoint", _spec(storage={"endpoint": "http://other:9000"})),
    ("labels", lambda d: d["metadata"].setdefault("labels", {}).update(team="vision")),
]


@pytest.mark.parametrize(("label", "example", "mutate", "expected"), HASH_TABLE, ids=[r[0] for r in HASH_TABLE])
def test_hash_changes_exactly_for_affected_stages(label: str, example: str, mutate: Callable[[Doc], None],
                                                  expected: set[str]) -> None:
    assert _changed(example, mutate) == expected


@pytest.mark.parametrize(("label", "mutate"), UNRELATED, ids=[r[0] for r in UNRELATED])
def test_hash_ignores_unrelated_fields(label: str, mutate: Callable[[Doc], None]) -> None:
    assert _changed(VD, mutate) == set()


def test_hash_ignores_sample_selection() -> None:
    assert _changed("scenejob-worldexplorer.yaml", _spec(indices=[0, 1], variants=["stylized"])) == set()


def test_default_values_written_out_hash_like_omitted_ones() -> None:
    doc = load_example(VD)
    explicit = copy.deepcopy(doc)
    explicit["spec"]["gaussians"]["steps"] = 30000  # the default
    assert _hashes(plan(parse_resource(doc))) == _hashes(plan(parse_resource(explicit)))


def test_plan_is_deterministic_and_serialisable() -> None:
    import json

    a, b = _plan(VD), _plan(VD)
    assert a == b
    assert json.loads(json.dumps(a.to_dict()))["stages"][0]["name"] == "outpaint"
    assert _plan(VD).downstream("gaussians") == ("coarse", "render")


@pytest.mark.parametrize(("layout", "directory"), [
    ("data/stage_1/{id}_{foreground,background,mask}.png", "data/stage_1"),
    ("{variant}/index_{index:04d}/scaffold/", ""),
    ("01_white_background.png", ""),
    ("02_perspectives/", "02_perspectives"),
    ("difix/data.json, meta/", ""),
    ("checkpoints/model_{step}.pkl, eval/, train_config.json", ""),
    ("manifests/{all_samples,split_train,split_test}.jsonl, split_summary.json", ""),
])
def test_output_directory_of_a_layout(layout: str, directory: str) -> None:
    from genfab.contract import layout_dir as _layout_dir

    assert _layout_dir(layout) == directory


@pytest.mark.parametrize(("scaffold", "seva_image", "unsupported", "image", "gate"), [
    ({"method": "single_image"}, "lab/seva:1", "", "lab/seva:1", False),  # SEVA's adapter in SEVA's image
    ({"method": "single_image"}, None, "set worldexplorer.seva.image", None, False),  # one line: what to set
    ({"method": "scaffold_gen", "selection": "automatic"}, "lab/seva:1", "", None, False),  # built in, family image
    ({"method": "scaffold_gen", "selection": "manual"}, None, "", None, True),  # built in, waits for a person
])
def test_the_scaffold_runs_where_its_settings_need(scaffold: dict[str, Any], seva_image: str | None,
                                                   unsupported: str, image: str | None, gate: bool) -> None:
    def mutate(d: Doc) -> None:
        block = d["spec"]["worldexplorer"]
        block["scaffold"] = scaffold
        block["seva"] = {"image": seva_image} if seva_image else {}
        block.pop("vggt", None)

    stage = _plan("scenejob-worldexplorer.yaml", mutate).stage("scaffold")
    assert (unsupported in stage.unsupported) if unsupported else stage.unsupported == ""
    assert (stage.implementation is None) == bool(unsupported)
    assert stage.image == image
    assert (stage.manual_gate is not None) == gate


@pytest.mark.parametrize(("seva", "vggt", "image"), [
    (None, None, None),  # built-in walk + aligned depth: the scene family's image
    ("lab/r:1", None, "lab/r:1"),  # SEVA frames
    (None, "lab/r:1", "lab/r:1"),  # VGGT geometry
    ("lab/r:1", "lab/r:1", "lab/r:1"),
])
def test_the_expansion_runs_in_the_research_image_it_needs(seva: str | None, vggt: str | None,
                                                           image: str | None) -> None:
    def mutate(d: Doc) -> None:
        block = d["spec"]["worldexplorer"]
        block["seva"] = {"image": seva} if seva else {}
        block["vggt"] = {"image": vggt} if vggt else {}

    stage = _plan("scenejob-worldexplorer.yaml", mutate).stage("expansion")
    assert stage.image == image and stage.implementation is not None
