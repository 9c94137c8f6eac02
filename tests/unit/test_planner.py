"""Planner table tests: every seed pipeline and stage selection, sharding, config hashes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from genfab.api import parse_resource
from genfab.api.status import CustomStageStatus
from genfab.planner import INPUT, Plan, PlanError, plan
from tests.helpers import ROOT, load_example
from tests.unit.shared import VD, example_plan

Doc = dict[str, Any]


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
    assert _edges(example_plan(example, mutate)) == edges


def test_first_stage_reads_the_job_input_when_outpaint_is_skipped() -> None:
    p = example_plan(VD, _spec(vistadream__stage="no-outpaint"))
    assert p.stage("depth").input_uris == ("s3://genfab-data/office/IMG_4029.jpg",)
    p = example_plan(VD, _spec(vistadream__stage="coarse"))
    assert p.stage("depth").input_uris == (p.stage("outpaint").output_uri,)


SELECTION_TABLE = [
    ("only 3 (the lab's worldexplorer --only_stages 3)", "scenejob-worldexplorer.yaml", _spec(onlyStages=["gaussians"]),
     {"scaffold": False, "expansion": False, "gaussians": True}),
    ("only 1,2", "scenejob-worldexplorer.yaml", _spec(onlyStages=["scaffold", "expansion"]),
     {"scaffold": True, "expansion": True, "gaussians": False}),
    ("start from step 6", "datasetjob-reference-object.yaml", _spec(referenceObject__startFromStep=6),
     {"white-background": False, "perspectives": False, "prompts": False, "scenes": False,
      "qwen-augmentation": False, "annotation": True, "cv-augmentation": True}),
    # a retry makes its step's failed samples again, and the steps after it add what follows from them
    ("retry failed step 4", "datasetjob-reference-object.yaml", _spec(referenceObject__retry={"retryFailed": True}),
     {"white-background": False, "perspectives": False, "prompts": False, "scenes": True,
      "qwen-augmentation": True, "annotation": True, "cv-augmentation": True}),
    ("retry failed step 5", "datasetjob-reference-object.yaml",
     _spec(referenceObject__retry={"retryFailedQwenAugmentations": True}),
     {"white-background": False, "perspectives": False, "prompts": False, "scenes": False,
      "qwen-augmentation": True, "annotation": True, "cv-augmentation": True}),
    ("both retries", "datasetjob-reference-object.yaml",
     _spec(referenceObject__retry={"retryFailed": True, "retryFailedQwenAugmentations": True},
           referenceObject__startFromStep=7),
     {"white-background": False, "perspectives": False, "prompts": False, "scenes": True,
      "qwen-augmentation": True, "annotation": True, "cv-augmentation": True}),
]


@pytest.mark.parametrize(("label", "example", "mutate", "runs"), SELECTION_TABLE, ids=[r[0] for r in SELECTION_TABLE])
def test_stage_selection(label: str, example: str, mutate: Callable[[Doc], None], runs: dict[str, bool]) -> None:
    assert {s.name: s.run for s in example_plan(example, mutate).stages} == runs


def test_retry_mode_selects_steps_and_changes_no_hash() -> None:
    base = example_plan("datasetjob-reference-object.yaml")
    retry = example_plan("datasetjob-reference-object.yaml", _spec(referenceObject__retry={"retryFailed": True}))
    assert [s.config_hash for s in base.stages] == [s.config_hash for s in retry.stages]


EXECUTION_TABLE = [
    # (label, referenceObject fields, execution the executor passes, output folder, what it has to choose)
    ("unset: new (the seed's default), not chosen yet", {}, None, "{new}", "new"),
    ("unset: new, chosen", {}, "20261123_101500", "20261123_101500", "new"),
    ("a name: byName", {"executionName": "mug"}, None, "mug", None),
    ("a name ignores what an executor passes", {"executionName": "mug"}, "20261123_101500", "mug", None),
    ("byName", {"executionMode": "byName", "executionName": "mug"}, None, "mug", None),
    ("last, not chosen yet", {"executionMode": "last"}, None, "{last}", "last"),
    ("last, chosen", {"executionMode": "last"}, "20250610_143022", "20250610_143022", "last"),
]


@pytest.mark.parametrize(("label", "fields", "execution", "folder", "choice"), EXECUTION_TABLE,
                         ids=[r[0] for r in EXECUTION_TABLE])
def test_execution_folder(label: str, fields: dict[str, str], execution: str | None, folder: str,
                          choice: str | None) -> None:
    from genfab.sequencing.execution import execution_choice

    def mutate(doc: Doc) -> None:
        doc["spec"]["referenceObject"].pop("executionName", None)
        doc["spec"]["referenceObject"].update(fields)

    doc = load_example("datasetjob-reference-object.yaml")
    mutate(doc)
    resource = parse_resource(doc)
    p = plan(resource, execution=execution)
    assert p.output_uri == f"s3://genfab-out/reference-object/{folder}"
    assert all(s.output_uri.startswith(p.output_uri + "/") or s.output_uri == p.output_uri for s in p.stages)
    assert execution_choice(resource) == choice
    assert p.execution == (execution if choice else None)


def test_sample_counts_and_shards() -> None:
    ro = example_plan("datasetjob-reference-object.yaml")  # 4 views x 10 prompts x 1 iteration, 2 qwen, 2 cv
    assert [(s.name, s.samples, s.shards) for s in ro.stages] == [
        ("white-background", 1, 1), ("perspectives", 4, 1), ("prompts", 1, 1), ("scenes", 40, 5),
        ("qwen-augmentation", 80, 10), ("annotation", 120, 2), ("cv-augmentation", 240, 4)]
    zero123 = example_plan("datasetjob-reference-object.yaml",
                           _spec(referenceObject__perspectives={"generator": "zero123"}))
    assert zero123.stage("perspectives").samples == 6 and zero123.stage("scenes").samples == 60


def test_manifest_counts_come_from_the_inventory_and_packing_sets_the_shard_size() -> None:
    we = example_plan("scenejob-worldexplorer.yaml")
    assert we.stage("gaussians").samples is None and we.stage("gaussians").shards is None
    we = example_plan("scenejob-worldexplorer.yaml", inventory={INPUT: 10})
    scaffold, gaussians = we.stage("scaffold"), we.stage("gaussians")
    assert (scaffold.shards, gaussians.shard_size, gaussians.shards) == (2, 4, 3)  # 8 samples per scaffold Pod


def test_shard_size_precedence() -> None:
    p = example_plan("datasetjob-relighting.yaml", _spec(shardSize=5, stages={"albedo": {"shardSize": 2}}),
              inventory={INPUT: 10})
    assert (p.stage("segment").shards, p.stage("albedo").shards) == (1, 2)  # numSamples caps 10 -> 3
    p = example_plan("datasetjob-relighting.yaml", _spec(relighting__numSamples=None, shardSize=4),
                     inventory={INPUT: 10})
    assert p.stage("segment").shards == 3


def test_inline_samples_expand_variants_and_indices() -> None:
    samples = [
        {"index": 0, "photorealistic": {"original_path": "a.png"}, "stylized": {"path": "a_s.png"}},
        {"index": 1, "scaffold": {"input_image": "b.png"}},
        {"index": 2, "stylized": {"original_path": "c.png"}},
    ]
    mutate = _spec(input={"samples": samples, "datasetUri": "s3://genfab-data/set"}, indices=[0, 1, 2],
                   variants=None)
    assert example_plan("scenejob-worldexplorer.yaml", mutate).stage("scaffold").samples == 4
    mutate_sel = _spec(input={"samples": samples, "datasetUri": "s3://genfab-data/set"}, indices=[0, 2],
                       variants=["stylized"])
    assert example_plan("scenejob-worldexplorer.yaml", mutate_sel).stage("gaussians").samples == 2


def test_resources_layering_and_tuning_gpus() -> None:
    we = example_plan("scenejob-worldexplorer.yaml")
    exp = we.stage("expansion").resources
    assert exp.memory == "80Gi" and exp.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert exp.tolerations == ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
    tr = example_plan("tuningrun-difix.yaml")
    assert (tr.stage("train").resources.gpus, tr.stage("train").shards) == (4, 2)
    assert tr.external_refs == ("DatasetJob/difix-hi4d-v1",)


def test_custom_stages_replace_in_place_or_append() -> None:
    we = example_plan("scenejob-worldexplorer.yaml", _spec(customStages=[
        {"name": "scaffold", "image": "lab/seva-fork:2025.06", "command": ["python", "-m", "seva_stage"]}]))
    assert we.stage("scaffold").family == "custom" and we.stage("scaffold").image.endswith("seva-fork:2025.06")
    assert "scaffold" in we.stage("scaffold").config  # the built-in parameters still reach the image
    extra = example_plan("scenejob-worldexplorer.yaml", _spec(customStages=[
        {"name": "mesh", "image": "lab/mesh:1"},
        {"name": "thumbs", "image": "lab/thumbs:1", "after": ["gaussians"]},
    ]))
    assert _edges(extra)[-2:] == [("mesh", ("gaussians",)), ("thumbs", ("gaussians",))]
    assert extra.stage("mesh").output_uri.endswith("/batch/mesh")
    # What the status says made each stage: a custom stage by its image, in place of genfab's or added.
    assert we.custom_stages == {"scaffold": CustomStageStatus(image="lab/seva-fork:2025.06", replaces=True)}
    assert extra.custom_stages == {"mesh": CustomStageStatus(image="lab/mesh:1", replaces=False),
                                   "thumbs": CustomStageStatus(image="lab/thumbs:1", replaces=False)}
    assert extra.stage("gaussians").custom is None


def test_custom_stage_cycle_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="cycle"):
        example_plan("scenejob-worldexplorer.yaml", _spec(customStages=[
            {"name": "a-stage", "image": "x:1", "after": ["b-stage"]},
            {"name": "b-stage", "image": "x:1", "after": ["a-stage"]},
        ]))


# -- config hashes ---------------------------------------------------------------------------------

def _hashes(p: Plan) -> dict[str, str]:
    return {s.name: s.config_hash for s in p.stages}


def _changed(example: str, mutate: Callable[[Doc], None]) -> set[str]:
    before, after = _hashes(example_plan(example)), _hashes(example_plan(example, mutate))
    assert before.keys() == after.keys()
    return {n for n in before if before[n] != after[n]}


def test_sevas_runtime_options_rerun_nothing_where_seva_runs() -> None:
    faster = _spec(worldexplorer__seva__runtime={"compile": "off", "attention": "flash"})
    more_steps = _spec(worldexplorer__seva__steps=25)
    base = _hashes(example_plan(WE))  # the example runs SEVA (its image is set)
    assert _hashes(example_plan(WE, faster)) == base
    assert _hashes(example_plan(WE, more_steps)) != base  # SEVA's own settings do decide the output


HASH_TABLE = [
    ("3dgs steps -> nothing of vistadream (its scene-growing stages do not read them)", VD,
     _spec(gaussians__steps=7000), set()),
    ("3dgs steps -> worldexplorer's gaussians", WE, _spec(gaussians__steps=7000), {"gaussians"}),
    ("sh degree -> vistadream's scene from gaussians on", VD, _spec(gaussians__shDegree=2),
     {"gaussians", "coarse", "render"}),
    ("coarse ratio -> coarse and render", VD, _spec(vistadream__coarseMaxInpaintRatio=0.3), {"coarse", "render"}),
    ("expansion percent -> everything from outpaint", VD, _spec(vistadream__expansionPercent=0.25),
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
    # run-time options (speed, memory, logs): no stage, in every pipeline
    ("vistadream fluxRuntime -> nothing", VD, _spec(vistadream__fluxRuntime={"compile": "off", "fp8": "rowwise",
                                                                              "firstBlockCache": 0.1}), set()),
    ("coarse summary log -> nothing", VD, _spec(vistadream__coarsePrintSummary=False), set()),
    ("scaffold fluxRuntime -> nothing", WE, _spec(worldexplorer__scaffold__fluxRuntime={"fp8": "rowwise"}), set()),
    ("3dgs packing, scenes per pod, packed mode -> nothing", WE,
     _spec(gaussians__packing="sequential", gaussians__scenesPerPod=4, gaussians__packed=True), set()),
    ("editRuntime -> nothing of reference-object", "datasetjob-reference-object.yaml",
     _spec(referenceObject__scenes__editRuntime={"compile": "off", "fp8": "rowwise", "cfgTruncation": 0.5}), set()),
    ("PerSAM log interval -> nothing", "datasetjob-reference-object.yaml",
     _spec(referenceObject__annotation__persamLogEpoch=10), set()),
    ("LLM endpoint and timeout -> nothing (the model name is the identity)", "datasetjob-reference-object.yaml",
     _spec(referenceObject__scenes__llmEndpoint="http://vllm:8000", referenceObject__scenes__llmTimeoutSeconds=5),
     set()),
    ("SAM3 compiled -> nothing of relighting", "datasetjob-relighting.yaml",
     _spec(relighting__segmentation__compile=True), set()),
    ("trainer workers and local checkpoints -> nothing", "tuningrun-difix.yaml",
     _spec(hyperparameters__dataloaderWorkers=8, hyperparameters__keepLocalCheckpoints=5), set()),
    # output-deciding fields -> exactly the stages that read them and their downstream
    ("LLM model -> prompts and what is made from them", "datasetjob-reference-object.yaml",
     _spec(referenceObject__scenes__llmModel="qwen3"),
     {"prompts", "scenes", "qwen-augmentation", "annotation", "cv-augmentation"}),
    ("edit steps -> every edit step and downstream", "datasetjob-reference-object.yaml",
     _spec(referenceObject__scenes__steps=20), {"white-background", "perspectives", "prompts", "scenes",
                                                "qwen-augmentation", "annotation", "cv-augmentation"}),
    ("render frames -> render", VD, _spec(vistadream__renderFrames=50), {"render"}),
    ("trajectory -> coarse and render", VD, _spec(vistadream__trajType="wobble"), {"coarse", "render"}),
    ("coarse frames -> coarse and render (not render's own read)", VD, _spec(vistadream__nFrames=4),
     {"coarse", "render"}),
    ("depth model -> depth onwards", VD, _spec(vistadream__depthProModel="lab/depth-pro-ft"),
     {"depth", "gaussians", "coarse", "render"}),
    ("the other depth backend's model name -> depth onwards (the settings hold both names; only the used one's "
     "weights are read)", VD, _spec(vistadream__depthAnythingModel="lab/dav2"),
     {"depth", "gaussians", "coarse", "render"}),
    ("expansion iterations -> expansion and gaussians", WE, _spec(worldexplorer__expansion__iterations=10),
     {"expansion", "gaussians"}),
    ("scaffold theme -> the whole worldexplorer chain", WE, _spec(worldexplorer__scaffold__theme="winter"),
     {"scaffold", "expansion", "gaussians"}),
    ("captions model (captions off) -> nothing", "datasetjob-relighting.yaml",
     _spec(relighting__captioning={"model": "lab/blip2"}), set()),
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
    explicit["spec"].setdefault("gaussians", {})["steps"] = 30000  # the default
    assert _hashes(plan(parse_resource(doc))) == _hashes(plan(parse_resource(explicit)))


def test_plan_is_deterministic_and_serialisable() -> None:
    import json

    a, b = example_plan(VD), example_plan(VD)
    assert a == b
    assert json.loads(json.dumps(a.to_dict()))["stages"][0]["name"] == "outpaint"
    assert example_plan(VD).downstream("gaussians") == ("coarse", "render")


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

    stage = example_plan("scenejob-worldexplorer.yaml", mutate).stage("scaffold")
    assert (unsupported in stage.unsupported) if unsupported else stage.unsupported == ""
    assert (stage.implementation is None) == bool(unsupported)
    assert stage.image == image
    assert (stage.manual_gate is not None) == gate


@pytest.mark.parametrize(("depth", "unsupported", "image"), [
    ({"depthBackend": "depth-pro"}, "", None),  # Depth Pro: a transformers model, the family images
    ({"depthBackend": "depth-anything-v2", "mogeImage": "lab/moge:1"}, "", None),  # image unused: not run in
    ({"depthBackend": "moge", "mogeImage": "lab/moge:1"}, "", "lab/moge:1"),  # MoGe's adapter in MoGe's image
    ({"mogeImage": None}, "set vistadream.mogeImage to a MoGe stage image (built from images/moge/Dockerfile), "
     "or set vistadream.depthBackend: depth-pro", None),  # the default (the lab's MoGe) unset: both fixes named
])
def test_the_stages_that_run_the_depth_model_run_in_moges_image_when_it_is_the_backend(
        depth: dict[str, Any], unsupported: str, image: str | None) -> None:
    p = example_plan(VD, _spec(vistadream__stage="coarse", **{f"vistadream__{k}": v for k, v in depth.items()}))
    for name in ("depth", "coarse"):
        stage = p.stage(name)
        assert (unsupported in stage.unsupported) if unsupported else stage.unsupported == ""
        assert stage.image == image and (stage.implementation is None) == bool(unsupported)
    assert p.stage("outpaint").image is None and p.stage("render").image is None


@pytest.mark.parametrize(("seva", "vggt", "image", "runs"), [
    (None, None, None, False),  # the lab's SEVA + VGGT (unset) without their images: refused, never the walk
    ("lab/r:1", None, "lab/r:1", False),  # SEVA frames, VGGT (the SEVA path's geometry) without its image
    (None, "lab/r:1", "lab/r:1", False),  # SEVA frames without SEVA's image
    ("lab/r:1", "lab/r:1", "lab/r:1", True),
])
def test_the_expansion_runs_in_the_research_image_it_needs(seva: str | None, vggt: str | None,
                                                           image: str | None, runs: bool) -> None:
    def mutate(d: Doc) -> None:
        block = d["spec"]["worldexplorer"]
        block["seva"] = {"image": seva} if seva else {}
        block["vggt"] = {"image": vggt} if vggt else {}

    stage = example_plan("scenejob-worldexplorer.yaml", mutate).stage("expansion")
    assert stage.image == image and (stage.implementation is not None) == runs


@pytest.mark.parametrize(("expansion", "seva", "vggt", "unsupported", "image"), [
    ({}, None, None, "worldexplorer.expansion.method unset (the lab's worldexplorer script's SEVA) runs SEVA "
     "(Stable Virtual Camera), research code that is not a package: set worldexplorer.seva.image to a SEVA stage "
     "image (built from images/seva/Dockerfile), or set worldexplorer.expansion.method: walk", None),  # the seed's
    ({}, "lab/r:1", None, "worldexplorer.expansion.geometry unset (the lab's worldexplorer script's VGGT on the SEVA "
     "path) runs VGGT", "lab/r:1"),  # VGGT is the SEVA path's geometry: refused without its image, both fixes
    ({}, "lab/r:1", "lab/r:1", "", "lab/r:1"),  # the lab's methods, each in its image
    ({"method": "walk", "geometry": "scene"}, "lab/r:1", "lab/r:1", "", None),  # asked for: the family's image
    ({"method": "walk"}, None, None, "", None),  # the walk, named: its geometry is the scene's (genfab's own)
    ({"method": "walk"}, None, "lab/r:1", "", None),  # an unused VGGT image changes nothing unless asked for
    ({"method": "seva"}, None, None, "set worldexplorer.seva.image to a SEVA stage image (built from "
     "images/seva/Dockerfile), or set worldexplorer.expansion.method: walk", None),  # both fixes, one line
    ({"method": "walk", "geometry": "vggt"}, None, None, "set worldexplorer.vggt.image to a VGGT stage image "
     "(built from images/vggt/Dockerfile), or set worldexplorer.expansion.geometry: scene", None),
    ({"method": "seva", "geometry": "vggt"}, "lab/r:1", "lab/r:1", "", "lab/r:1"),
])
def test_the_expansion_method_and_geometry_are_explicit(expansion: dict[str, str], seva: str | None,
                                                        vggt: str | None, unsupported: str, image: str | None) -> None:
    def mutate(d: Doc) -> None:
        block = d["spec"]["worldexplorer"]
        block["expansion"] = expansion
        block["seva"] = {"image": seva} if seva else {}
        block["vggt"] = {"image": vggt} if vggt else {}

    stage = example_plan("scenejob-worldexplorer.yaml", mutate).stage("expansion")
    assert (unsupported in stage.unsupported) if unsupported else stage.unsupported == ""
    assert stage.image == image


SETTING_BLOCKS = ("worldexplorer", "vistadream", "relighting", "referenceObject", "difix", "gaussians", "refinement",
                  "hyperparameters", "baseModel", "perceptualModel")


def _leaves(node: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(node, dict) and node:
        return [leaf for k, v in node.items() for leaf in _leaves(v, (*path, k))]
    return [path]


@pytest.mark.parametrize("example", [WE, VD, "datasetjob-relighting.yaml", "datasetjob-reference-object.yaml",
                                     "datasetjob-difix.yaml", "tuningrun-difix.yaml"])
def test_examples_set_no_field_without_effect(example: str) -> None:
    """Every pipeline setting an example writes changes its plan (a hash, the stages, a mounted config)
    unless it is the default written out: an example never shows a field that does nothing."""
    doc = load_example(example)
    base_resource, base_plan = parse_resource(doc), plan(parse_resource(doc)).to_dict()
    for block in SETTING_BLOCKS:
        for leaf in _leaves(doc["spec"].get(block), (block,)) if block in doc["spec"] else []:
            changed = copy.deepcopy(doc)
            node = changed["spec"]
            for key in leaf[:-1]:
                node = node[key]
            del node[leaf[-1]]
            try:
                resource = parse_resource(changed)
            except ValueError:
                continue  # a required field
            if resource == base_resource:
                continue  # the default, written out to show it
            assert plan(resource).to_dict() != base_plan, f"{example}: spec.{'.'.join(leaf)} has no effect"


MODEL_TABLE = [
    ("FluxFill weights -> outpaint, coarse and what follows", VD, "black-forest-labs/FLUX.1-Fill-dev",
     {"outpaint", "depth", "gaussians", "coarse", "render"}),
    ("MoGe weights -> depth, coarse and what follows", VD, "Ruicheng/moge-vitl",
     {"depth", "gaussians", "coarse", "render"}),
    ("a model no stage loads -> nothing", VD, "depth-anything/Depth-Anything-V2-Metric-Outdoor-Large-hf", set()),
    ("the example's classical normals load no depth model -> nothing", "datasetjob-relighting.yaml",
     "Intel/dpt-hybrid-midas", set()),
    ("the classical-only example loads no SAM3 -> nothing", "datasetjob-relighting.yaml", "facebook/sam3", set()),
    ("Qwen Image Edit -> every edit step onwards", "datasetjob-reference-object.yaml",
     "ovedrive/Qwen-Image-Edit-2509-4bit",
     {"white-background", "perspectives", "prompts", "scenes", "qwen-augmentation", "annotation",
      "cv-augmentation"}),
    ("camera LoRA -> perspectives onwards", "datasetjob-reference-object.yaml", "dx8152/Qwen-Edit-2509-Multiple-angles",
     {"perspectives", "prompts", "scenes", "qwen-augmentation", "annotation", "cv-augmentation"}),
    ("SAM -> annotation onwards", "datasetjob-reference-object.yaml", "ybelkada/segment-anything",
     {"annotation", "cv-augmentation"}),
    ("DiFix base model -> train", "tuningrun-difix.yaml", "stabilityai/sd-turbo", {"train"}),
    ("SEVA weights -> scaffold onwards", WE, "stabilityai/stable-virtual-camera",
     {"scaffold", "expansion", "gaussians"}),
]


@pytest.mark.parametrize(("label", "example", "model", "expected"), MODEL_TABLE, ids=[r[0] for r in MODEL_TABLE])
def test_new_weights_rerun_exactly_the_stages_that_load_them(label: str, example: str, model: str,
                                                             expected: set[str]) -> None:
    resource = parse_resource(load_example(example))
    before = _hashes(plan(resource, models={model: "identity-1"}))
    after = _hashes(plan(resource, models={model: "identity-2"}))
    assert {n for n in before if before[n] != after[n]} == expected


def test_sam3_weights_rerun_segment_onwards_when_it_is_listed() -> None:
    doc = load_example("datasetjob-relighting.yaml")
    doc["spec"]["relighting"]["segmentation"]["backends"] = ["sam3", "sam2", "classical"]
    resource = parse_resource(doc)
    before = _hashes(plan(resource, models={"facebook/sam3": "identity-1"}))
    after = _hashes(plan(resource, models={"facebook/sam3": "identity-2"}))
    assert {n for n in before if before[n] != after[n]} == {"segment", "albedo", "degrade", "recombine", "organize"}


@pytest.mark.parametrize(("backends", "normals", "gpus"), [
    (["classical"], "classical", {"segment": 0, "degrade": 0}),  # the CPU example: no GPU on a cluster either
    (["sam3", "sam2", "classical"], "classical", {"segment": 1, "degrade": 0}),
    (["classical"], "midas", {"segment": 0, "degrade": 1}),
    (["sam3", "sam2"], "auto", {"segment": 1, "degrade": 1}),  # the defaults
])
def test_the_plan_asks_gpus_only_for_what_runs_on_one(backends: list[str], normals: str, gpus: dict[str, int]) -> None:
    doc = load_example("datasetjob-relighting.yaml")
    doc["spec"]["relighting"]["segmentation"]["backends"] = backends
    doc["spec"]["relighting"]["degradation"]["softShading"]["normals"] = normals
    p = plan(parse_resource(doc))
    assert {name: p.stage(name).resources.gpus for name in gpus} == gpus
    assert all(p.stage(n).resources.gpus == 0 for n in ("albedo", "recombine", "organize"))
    doc["spec"]["stages"] = {"segment": {"gpus": 2}}  # explicit resources still win
    assert plan(parse_resource(doc)).stage("segment").resources.gpus == 2


@pytest.mark.parametrize(("normals", "model"), [("midas", "Intel/dpt-hybrid-midas"), ("auto", "Intel/dpt-hybrid-midas"),
                                                ("depth-anything", "depth-anything/Depth-Anything-V2-Small-hf")])
def test_the_normals_model_reruns_degrade_onwards(normals: str, model: str) -> None:
    doc = load_example("datasetjob-relighting.yaml")
    doc["spec"]["relighting"]["degradation"]["softShading"]["normals"] = normals
    resource = parse_resource(doc)
    before = _hashes(plan(resource, models={model: "identity-1"}))
    after = _hashes(plan(resource, models={model: "identity-2"}))
    assert {n for n in before if before[n] != after[n]} == {"degrade", "recombine", "organize"}


def test_an_endpoint_model_is_named_not_read() -> None:
    p = example_plan("datasetjob-reference-object.yaml")
    assert p.stage("prompts").models == {"llama3.1": "endpoint:llama3.1"}
    assert "llama3.1" not in p.model_ids()


RERUN_TABLE = [
    ("token with stages -> them and downstream", VD, _spec(rerun={"token": "1", "stages": ["gaussians"]}),
     {"gaussians", "coarse", "render"}),
    ("token alone -> every stage", VD, _spec(rerun={"token": "1"}),
     {"outpaint", "depth", "gaussians", "coarse", "render"}),
    ("token with onlyStages -> the selected stages (the lab's worldexplorer --only_stages 3)", WE,
     _spec(onlyStages=["gaussians"], rerun={"token": "1"}), {"gaussians"}),
    ("token with startFromStep -> step 6 onwards (--start_from_step 6)", "datasetjob-reference-object.yaml",
     _spec(referenceObject__startFromStep=6, rerun={"token": "1"}), {"annotation", "cv-augmentation"}),
]


@pytest.mark.parametrize(("label", "example", "mutate", "expected"), RERUN_TABLE, ids=[r[0] for r in RERUN_TABLE])
def test_a_new_rerun_token_reruns_exactly_the_named_stages(label: str, example: str, mutate: Callable[[Doc], None],
                                                           expected: set[str]) -> None:
    assert _changed(example, mutate) == expected
    # the same token again changes nothing; another token changes the same stages
    first, again = _hashes(example_plan(example, mutate)), _hashes(example_plan(example, mutate))
    assert first == again

    def other(d: Doc) -> None:
        mutate(d)
        d["spec"]["rerun"]["token"] = "2"

    second = _hashes(example_plan(example, other))
    assert {n for n in first if first[n] != second[n]} == expected


def test_plan_names_why_a_stage_runs_again() -> None:
    from genfab.cli.main import stage_verdicts

    base = example_plan(VD)
    assert set(stage_verdicts(example_plan(VD, _spec(vistadream__fluxRuntime={"fp8": "rowwise"})), base).values()) == {
        "run (same hash: reused)"}
    changed = stage_verdicts(example_plan(VD, _spec(vistadream__trajType="wobble")), base)
    assert changed["coarse"] == "run (again: config)" and changed["render"] == "run (again: config, upstream)"
    assert changed["depth"] == "run (same hash: reused)"
    forced = stage_verdicts(example_plan(VD, _spec(rerun={"token": "x", "stages": ["render"]})), base)
    assert forced["render"] == "run (again: forced)"
    models = plan(parse_resource(load_example(VD)), models={"Ruicheng/moge-vitl": "new"})
    assert stage_verdicts(models, base)["depth"] == "run (again: model)"
    assert stage_verdicts(models, base)["gaussians"] == "run (again: upstream)"
    # not selected: the word `genfab run` and the status use for it
    only = stage_verdicts(example_plan(VD, _spec(onlyStages=["outpaint"])), None)
    assert only["outpaint"] == "run" and only["depth"] == "Skipped"


@pytest.mark.parametrize(("example", "changes", "expected"), [
    ("scenejob-vistadream.yaml", {}, []),  # the lab's MoGe v1 and its image
    ("scenejob-vistadream.yaml", {"depthBackend": "depth-anything-v2"}, []),  # chosen: no note
    ("scenejob-worldexplorer.yaml", {}, []),  # the research images are set: the lab's worldexplorer methods run
    ("scenejob-worldexplorer-tiny.yaml", {}, []),  # walk and scene, said explicitly
    ("datasetjob-relighting.yaml", {}, []),
    ("tuningrun-difix.yaml", {}, ["hyperparameters.seed: genfab's default `42`, the lab's none (unseeded)"]),
    ("tuningrun-difix.yaml", {"seed": 7}, []),  # chosen: no note
    ("datasetjob-reference-object.yaml", {}, ["referenceObject.scenes.modelPath: genfab's default",
                                              "referenceObject.seed: genfab's default `12345`",
                                              "referenceObject.scenes.systemPromptUri: genfab's default `null`",
                                              "referenceObject.qwenAugmentation.predefinedPromptsUri: genfab's"]),
])
def test_validate_plan_and_run_note_each_default_left_unset_that_is_not_the_labs(
        example: str, changes: dict[str, Any], expected: list[str]) -> None:
    """`genfab.api.fidelity.differing_defaults`: a row whose lab value is not genfab's default, left unset."""
    from click.testing import CliRunner

    from genfab.cli.main import cli
    from genfab.cli.notes import seed_notes

    doc = load_example(example)
    spec = doc["spec"]
    block = spec.get("vistadream") or spec.get("worldexplorer") or spec.get("hyperparameters")
    if block is not None:
        block.update(changes)
    notes = seed_notes(parse_resource(doc))
    assert len(notes) == len(expected) and all(n.startswith(e) for n, e in zip(notes, expected, strict=True))
    assert all(n.endswith("(why: docs/pipelines/difix-trainer.md, against the lab's code)") for n in notes
               if example.startswith("tuningrun"))
    if example == "tuningrun-difix.yaml" and not changes:
        result = CliRunner().invoke(cli, ["validate", str(ROOT / "examples" / example)])
        assert result.exit_code == 0 and f"  note: {notes[0]}" in result.output.splitlines()
        planned = CliRunner().invoke(cli, ["plan", str(ROOT / "examples" / example)])  # plan says the same
        assert planned.exit_code == 0 and f"note: {notes[0]}" in planned.output.splitlines()


def test_a_fixed_implementation_makes_its_committed_samples_again() -> None:
    """`StageDecl.revision`: part of a stage's config hash only above 0 (every other stage keeps its
    hash); everything downstream follows through the upstream hashes."""
    from genfab.api.pipeline import pipelines
    from genfab.planner.hashing import hash_parts

    args: dict[str, Any] = dict(name="s", family="cv", image=None, command=(), args=(), env=(), config={},
                                input_uris=(), upstream_hashes={}, models={}, rerun=None)
    assert hash_parts(**args) == hash_parts(**args, revision=0) != hash_parts(**args, revision=1)
    assert pipelines()["relighting"].stage("segment").revision == 2  # masks laid out around the face
    assert pipelines()["relighting"].stage("albedo").revision == 2  # bounded lift, hue kept; never darker
    assert pipelines()["relighting"].stage("recombine").revision == 1  # saturationRatio over lit pixels
    assert pipelines()["difix"].stage("export").revision == 1  # 8-bit RGB files


def test_a_stage_over_kubernetes_shard_limit_is_refused_at_plan_time_with_what_to_set() -> None:
    """1,000,000 images in vistadream's shards of 8 would be 125,000 shards: an Indexed Job Kubernetes
    refuses (over 100,000 Pods with per-index retries) and report indexes genfab does not read. One line
    naming the setting, at plan time; the same images in shards of 10 plan."""
    from genfab.contract import too_many_shards
    from genfab.contract.names import MAX_STAGE_SHARDS

    many = _spec(input={"manifest": "s3://genfab-data/images/metadata.json"})
    with pytest.raises(PlanError) as refused:
        example_plan(VD, many, inventory={INPUT: 1_000_000})
    assert str(refused.value) == (
        "stage outpaint: 1,000,000 samples at shardSize 8 are 125,000 shards, and a stage runs at most 100,000 (a "
        "Kubernetes Indexed Job's Pods, genfab's shard reports): set spec.stages.outpaint.shardSize to 10 or more")
    stages = {name: {"shardSize": 10} for name in ("outpaint", "depth", "gaussians", "coarse", "render")}
    fine = example_plan(VD, _spec(input={"manifest": "s3://genfab-data/images/metadata.json"}, stages=stages),
                        inventory={INPUT: 1_000_000})
    assert max(s.shards or 0 for s in fine.stages) == MAX_STAGE_SHARDS
    assert too_many_shards("x", MAX_STAGE_SHARDS, 1, MAX_STAGE_SHARDS) is None
