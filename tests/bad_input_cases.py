"""The malformed resources every layer must refuse with the field and the reason (the API's models,
the generated CRD, the real CRD server): one table, shared by tests/unit/test_bad_inputs.py and
tests/realserver/test_api_on_the_real_server.py."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Doc = dict[str, Any]


@dataclass(frozen=True)
class Case:
    id: str
    example: str
    mutate: Callable[[Doc], None]
    path: str
    message: str
    crd: bool = True
    """Whether the CRD itself can reject it (metadata and unknown fields are the API server's own)."""


LAB_TRAINER = {"name": "train", "image": "registry.example.com/lab/difix3d-train:2025.06",
               "command": ["accelerate", "launch", "src/train_difix.py"]}
"""A custom stage replacing the built-in trainer (the lab's Difix3D image)."""


def _custom(**fields: Any) -> Callable[[Doc], None]:
    """The TuningRun with the lab's trainer as a custom stage, plus `fields` on it."""
    return _set("spec.customStages", [{**LAB_TRAINER, **fields}])


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        keys = path.split(".")
        node = doc
        for k in keys[:-1]:
            node = node.setdefault(k, {}) if not k.isdigit() else node[int(k)]
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value

    return mutate


_DELETE = object()
VD, WE = "scenejob-vistadream.yaml", "scenejob-worldexplorer.yaml"
RL, RO = "datasetjob-relighting.yaml", "datasetjob-reference-object.yaml"
DX, TR = "datasetjob-difix.yaml", "tuningrun-difix.yaml"

CASES = [
    Case("no-output", VD, _set("spec.output", _DELETE), "spec.output", "Field required"),
    Case("unknown-pipeline", VD, _set("spec.pipeline", "instantsplat"), "spec.pipeline",
         "'worldexplorer' or 'vistadream'"),
    Case("ratio-out-of-range", VD, _set("spec.vistadream.coarseMaxInpaintRatio", 1.5),
         "spec.vistadream.coarseMaxInpaintRatio", "less than or equal to 1"),
    Case("coarse-min-gt-max", VD, _set("spec.vistadream.coarseMinInpaintRatio", 0.3),
         "spec.vistadream.coarseMinInpaintRatio", "must be <= coarseMaxInpaintRatio"),
    Case("fbc-with-full-compile", VD, _set("spec.vistadream.fluxRuntime", {"compile": "full", "firstBlockCache": 0.08}),
         "spec.vistadream.fluxRuntime.firstBlockCache", "needs compile: blocks or off"),
    Case("fp8-unknown", VD, _set("spec.vistadream.fluxRuntime", {"fp8": True}),
         "spec.vistadream.fluxRuntime.fp8", "'off', 'rowwise' or 'tensorwise'"),
    Case("range-min-gt-max", RL, _set("spec.relighting.albedo.blend", {"min": 0.3, "max": 0.2}),
         "spec.relighting.albedo.blend.min", "min must be <= max"),
    Case("output-traversal", VD, _set("spec.output", "s3://genfab-out/a/../../etc"), "spec.output", "'..'"),
    Case("output-absolute-key", VD, _set("spec.output", "s3://genfab-out//etc/passwd"), "spec.output",
         "relative, not absolute"),
    Case("output-bad-bucket", VD, _set("spec.output", "s3://Genfab_Out/x"), "spec.output", "not a valid bucket"),
    Case("output-ip-bucket", VD, _set("spec.output", "s3://192.168.1.1/x"), "spec.output", "is an IP address"),
    Case("output-system-folder", VD, _set("spec.output", "file:///etc"), "spec.output",
         "in the system folder /etc"),
    Case("output-root-folder", VD, _set("spec.output", "file:///"), "spec.output", "is the root folder"),
    Case("output-unknown-scheme", VD, _set("spec.output", "gs://bucket/x"), "spec.output", "s3://... or file://"),
    Case("sample-path-absolute", WE, _set("spec.input", {
        "samples": [{"photorealistic": {"original_path": "/etc/passwd"}}], "datasetUri": "s3://genfab-data/x"}),
        "spec.input.samples[0].photorealistic.original_path", "not absolute"),
    Case("sample-path-traversal", WE, _set("spec.input", {
        "samples": [{"stylized": {"path": "images/../../secret.png"}}], "datasetUri": "s3://genfab-data/x"}),
        "spec.input.samples[0].stylized.path", "'..'"),
    Case("sample-id-traversal", RL, _set("spec.relighting.input.sampleIds", ["../../etc/passwd"]),
         "spec.relighting.input.sampleIds[0]", "not a path"),
    Case("unknown-stage-selected", WE, _set("spec.onlyStages", ["scaffold", "texturing"]), "spec.onlyStages",
         "unknown stage(s) ['texturing']"),
    Case("unknown-stage-override", RL, _set("spec.stages", {"denoise": {"gpus": 1}}), "spec.stages",
         "allowed: ['segment', 'albedo'"),
    Case("negative-gpus", VD, _set("spec.resources", {"gpus": -1}), "spec.resources.gpus",
         "greater than or equal to 0"),
    Case("normals-not-built-in", RL, _set("spec.relighting.degradation.softShading.normals", "marigold"),
         "spec.relighting.degradation.softShading.normals", "'midas', 'depth-anything', 'dpt', 'auto' or 'classical'"),
    Case("weights-all-zero", RL, _set("spec.relighting.degradation.weights.softShading", 0.0),
         "spec.relighting.degradation.weights.softShading", "at least one degradation weight must be above 0"),
    Case("both-input-forms", VD, _set("spec.input", {"image": "s3://genfab-data/a.png",
                                                     "manifest": "s3://genfab-data/metadata.json"}),
         "spec.input.image", "exactly one of `image`, `manifest`, `samples`"),
    Case("neither-input-form", VD, _set("spec.input", {}), "spec.input.image",
         "exactly one of `image`, `manifest`, `samples`"),
    Case("type-without-block", RL, _set("spec.relighting", _DELETE), "spec.relighting",
         "type relighting needs the `relighting` block"),
    Case("cv-aug-without-annotation", RO, _set("spec.referenceObject.annotation.enabled", False),
         "spec.referenceObject.cvAugmentation", "enable annotation too"),
    Case("annotation-without-mask", RO, _set("spec.referenceObject.inputMask", _DELETE),
         "spec.referenceObject.inputMask", "required when annotation is enabled"),
    Case("split-ratio-one", RO, _set("spec.referenceObject.annotation.splitRatio", 1.0),
         "spec.referenceObject.annotation.splitRatio", "less than 1"),
    Case("start-step-8", RO, _set("spec.referenceObject.startFromStep", 8),
         "spec.referenceObject.startFromStep", "less than or equal to 7"),
    Case("jpeg-quality-over-100", RO, _set("spec.referenceObject.cvAugmentation.ranges.compressionQuality",
                                           {"min": 10, "max": 140}),
         "spec.referenceObject.cvAugmentation.ranges.compressionQuality", "within 1-100"),
    Case("wrong-pipeline-block", WE, _set("spec.vistadream", {"stage": "coarse"}), "spec.vistadream",
         "need pipeline vistadream"),
    Case("both-dataset-forms", TR, _set("spec.dataset.dataJsonUri", "s3://genfab-out/difix/data.json"),
         "spec.dataset.datasetJobRef", "exactly one of"),
    Case("fixed-camera-without-id", DX, _set("spec.difix.referenceView", {"strategy": "fixed-camera"}),
         "spec.difix.referenceView", "needs `referenceView.referenceCamId`"),
    Case("duplicate-source", DX, lambda d: d["spec"]["difix"]["sources"].append(
        copy.deepcopy(d["spec"]["difix"]["sources"][0])), "spec.difix.sources", "unique"),
    Case("vistadream-bad-stage", VD, _set("spec.vistadream.stage", "medium"), "spec.vistadream.stage",
         "'no-outpaint', 'outpaint', 'fine' or 'coarse'"),
    Case("max-resolution-not-32", VD, _set("spec.vistadream.maxResolution", 1000),
         "spec.vistadream.maxResolution", "multiple of 32"),
    Case("custom-after-unknown", TR, _set("spec.customStages", [
        {"name": "eval", "image": "lab/eval:1", "after": ["evaluate"]}]), "spec.customStages",
         "unknown stage(s) ['evaluate']"),
    Case("bad-quantity", VD, _set("spec.resources", {"memory": "32 GB"}), "spec.resources.memory",
         "not a valid Kubernetes quantity"),
    Case("hub-cache-root", VD, _set("spec.models", {"hubCache": "/"}), "spec.models.hubCache",
         "absolute directory path other than /"),
    Case("hub-cache-relative", VD, _set("spec.models", {"hubCache": "var/lib/kubelet"}), "spec.models.hubCache",
         "absolute directory path other than /"),
    Case("hub-cache-traversal", VD, _set("spec.models", {"hubCache": "/models/../var/lib/kubelet/pods"}),
         "spec.models.hubCache", "'..'"),
    Case("custom-env-credentials", TR, _custom(env=[
        {"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}]), "spec.customStages[0].env[0].name", "reserved by genfab"),
    Case("custom-env-contract", TR, _custom(env=[
        {"name": "GENFAB_STAGE_CONFIG", "value": "/tmp/evil.json"}]), "spec.customStages[0].env[0].name",
         "reserved by genfab"),
    Case("custom-env-index", TR, _custom(env=[
        {"name": "JOB_COMPLETION_INDEX", "value": "3"}]), "spec.customStages[0].env[0].name", "reserved by genfab"),
    Case("uri-too-long", VD, _set("spec.output", "s3://genfab-out/" + "a" * 1020), "spec.output",
         "at most 1024 characters"),
    Case("boolean-as-number", RL, _set("spec.relighting.captioning.enabled", 0),
         "spec.relighting.captioning.enabled", "true or false"),
    Case("boolean-as-string", VD, _set("spec.gaussians.video", "yes"), "spec.gaussians.video", "true or false"),
    Case("nul-in-uri", RL, _set("spec.relighting.input.uri", "s3://genfab-data/a\x00b"), "spec.relighting.input.uri",
         "NUL"),
    Case("name-over-40", VD, _set("metadata.name", "n" * 41), "metadata.name", "at most 40 characters"),
    Case("fraction-above-1", RL, _set("spec.relighting.albedo.blend", {"min": 0.2, "max": 2}),
         "spec.relighting.albedo.blend.max", "less than or equal to 1"),
    Case("fraction-below-0", RL, _set("spec.relighting.degradation.softShading.ambient", {"min": -1, "max": 0.5}),
         "spec.relighting.degradation.softShading.ambient.min", "greater than or equal to 0"),
    Case("shadow-strength-above-1", RL, _set("spec.relighting.degradation.hardShadow",
                                             {"strength": {"min": 0.5, "max": 1.5}}),
         "spec.relighting.degradation.hardShadow.strength.max", "less than or equal to 1"),
    # The API server caps whole objects (1.5 MiB); genfab caps a custom stage's free-form config,
    # which CEL cannot measure.
    Case("custom-config-over-64k", TR, _custom(config={"blob": "x" * 70000}),
         "spec.customStages[0].config", "at most 64 KiB", crd=False),
    Case("misspelled-field", VD, _set("spec.outptu", "s3://x/y"), "spec.outptu", "unknown field (did you mean output?)",
         crd=False),
    Case("misspelled-nested-field", RL, _set("spec.relighting.degradation.softShading.normal", "classical"),
         "spec.relighting.degradation.softShading.normal", "unknown field (did you mean normals?)", crd=False),
    Case("unknown-field-nothing-close", RL, _set("spec.relighting.zzz", 1), "spec.relighting.zzz",
         "unknown field (check the spelling; fields are camelCase)", crd=False),
    Case("uppercase-name", VD, _set("metadata.name", "Office"), "metadata.name", "must be a DNS label"),
    Case("dotted-name", VD, _set("metadata.name", "a.b"), "metadata.name", "must be a DNS label"),
    # The small ones of the second hostile-tenant round: genfab refuses what the CRD's types refuse.
    Case("cpu-over-32-chars", RL, _set("spec.resources.cpu", "1" * 200), "spec.resources.cpu", "at most 32 characters"),
    Case("float-steps", WE, _set("spec.gaussians.steps", 3.5), "spec.gaussians.steps", "Input should be an integer"),
    Case("boolean-index", WE, _set("spec.input", {"samples": [{"index": True, "photorealistic": {"path": "a.png"}}],
                                                    "datasetUri": "s3://genfab-data/set"}),
         "spec.input.samples[0].index", "Input should be an integer"),
    Case("string-retries", WE, _set("spec.retries", "3"), "spec.retries", "Input should be an integer"),

]
