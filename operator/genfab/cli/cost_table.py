"""The cost table that opens the benchmarks page (benchmarks/results/cost.md, `genfab docs`): what 100
samples of each pipeline cost end to end, genfab against the lab's way, by `genfab plan --estimate`'s own
function on a documented example with the settings a row names.

Per row: the plan of the example (with `overrides` on its spec) at EXAMPLE_SAMPLES input samples, its
estimate on a GPU kind, and
- **GPU-hours per 100 samples**: the estimate's GPU-hours (every Pod's load and warm-up included, at the
  default shard sizes) per 100 of the samples the pipeline delivers (`counted`: a scene, an image of the
  dataset, a relit pair);
- **the lab's way**: each stage's own baseline from its calibration row (the eager pipeline, the research
  code as it is, the plain loop), chained: the sum over the stages, without any per-Pod part (the lab's
  scripts load their models once per run), so the ratio never flatters genfab. It is given only where
  every stage that runs on a GPU has one; otherwise the row names the stages whose lab's way is not
  measured;
- **peak GiB**: the largest of the stages' peaks (one stage runs per Pod)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from genfab.api import parse_resource
from genfab.planner import INPUT, plan
from genfab.planner.estimate import Estimate, estimate, measured_kinds

EXAMPLE_SAMPLES = 100


@dataclass(frozen=True)
class Case:
    """One row: a pipeline's example with settings, and what a sample of it is."""

    pipeline: str
    example: str
    """The file under examples/."""
    settings: str
    """What the row runs, for people."""
    counted: str
    """The stage whose samples are the pipeline's (`samples` is what it calls them)."""
    samples: str
    overrides: dict[str, Any] = field(default_factory=dict)
    """Dotted paths under the example's `spec`, set before it is planned."""
    inputs: int = EXAMPLE_SAMPLES
    """Input samples it is planned with (a pipeline whose Pods' load dominates small runs is shown at a
    lab's size)."""
    per: int = 100
    """The row's unit: GPU-hours per this many samples."""


WORLDEXPLORER_BUILT_IN = {"worldexplorer.scaffold.method": "scaffold_gen",
                          "worldexplorer.scaffold.selection": "automatic", "worldexplorer.expansion.method": "walk"}
LAB_REFERENCE_OBJECT = {"referenceObject.scenes.numPrompts": 5, "referenceObject.scenes.numIterations": 3,
                        "referenceObject.qwenAugmentation.enabled": False, "referenceObject.cvAugmentation.count": 1}
"""The lab's document's defaults (`--num_prompts 5 --num_iterations 3`, no Qwen augmentation, one CV copy)
where the example follows its Quick Start."""
VISTADREAM_MEASURED = {"vistadream.maxResolution": 1024, "vistadream.fluxSteps": 50,
                       "vistadream.coarseDenseMultiplier": 4, "vistadream.trajMaxPercentage": 60.0,
                       "vistadream.nFrames": 12}
"""vistadream's defaults before they became the lab's script's: what its H100 rows were measured at."""
SCENES_IN_ONE_JOB = {"input": {"manifest": "s3://genfab-data/office/metadata.json"}}
"""The example's one `image` as a curated manifest (planned at EXAMPLE_SAMPLES images): how a lab makes its
scenes, one job for many, whose Pods each take a shard of scenes (one image per job pays every model load
for each scene)."""
ONE_WORKER = {"parallelism": 1}
"""Every stage's shards taken one after another by one warm worker: its load and compilation paid once per
stage (the example leaves `parallelism` unset, so every shard runs at once and each pays them)."""
RELIGHTING_MODELS = {"relighting.segmentation.backends": ["sam3"],
                     "relighting.degradation.softShading.normals": "depth-anything", "relighting.numSamples": None}

CASES: tuple[Case, ...] = (
    Case("worldexplorer", "scenejob-worldexplorer.yaml", "the seed's defaults: `single_image` scaffold, SEVA + "
         "VGGT expansion, 3DGS at 30,000 steps", "gaussians", "scenes"),
    Case("worldexplorer", "scenejob-worldexplorer.yaml", "the same on one warm worker per stage (`parallelism: 1`: "
         "each worker loads and compiles once)", "gaussians", "scenes", ONE_WORKER),
    Case("worldexplorer", "scenejob-worldexplorer.yaml", "`scaffold_gen` (automatic) and the built-in walk, "
         "3DGS at 30,000 steps", "gaussians", "scenes", WORLDEXPLORER_BUILT_IN),
    Case("vistadream", "scenejob-vistadream.yaml", "coarse (the example) at the lab's script's defaults "
         "(`maxResolution` 512, 25 fill steps), 100 images in one job (`input.manifest`)", "render", "scenes",
         SCENES_IN_ONE_JOB),
    Case("vistadream", "scenejob-vistadream.yaml", "the same on one warm worker per stage (`parallelism: 1`)", "render",
         "scenes", {**SCENES_IN_ONE_JOB, **ONE_WORKER}),
    Case("vistadream", "scenejob-vistadream.yaml", "coarse at the settings measured (`maxResolution` 1024, "
         "50 fill steps, 10 views of 4 candidates), 100 images in one job", "render", "scenes",
         {**SCENES_IN_ONE_JOB, **VISTADREAM_MEASURED}),
    Case("reference-object", "datasetjob-reference-object.yaml", "the lab's defaults: 5 prompts x 3 iterations x "
         "the views, the 4-bit export dequantized (lossless)", "annotation", "dataset images", LAB_REFERENCE_OBJECT),
    Case("reference-object", "datasetjob-reference-object.yaml", "the same on one warm worker per stage "
         "(`parallelism: 1`)", "annotation", "dataset images", {**LAB_REFERENCE_OBJECT, **ONE_WORKER}),
    Case("reference-object", "datasetjob-reference-object.yaml", "the same with `editRuntime.fp8: rowwise` (latent "
         "cosine 0.99969)", "annotation", "dataset images",
         {**LAB_REFERENCE_OBJECT, "referenceObject.scenes.editRuntime.fp8": "rowwise"}),
    Case("relighting", "datasetjob-relighting-cluster.yaml", "10,000 portraits, SAM3 masks, Depth Anything normals "
         "(the other stages on CPUs)", "organize", "pairs", RELIGHTING_MODELS, inputs=10_000),
    Case("difix", "datasetjob-difix.yaml", "the example (export, split, adapter)", "export", "triplets"),
    Case("tuning-difix", "tuningrun-difix.yaml", "20,000 steps on 2 nodes x 4 GPUs (the example)", "train", "run",
         per=1),
)


def with_overrides(spec: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    for path, value in overrides.items():
        node = out
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def case_estimate(case: Case, gpu: str, examples: Path) -> tuple[Estimate, int | None]:
    """The case's estimate on `gpu` and how many samples its counted stage makes."""
    doc = next(d for d in yaml.safe_load_all((examples / case.example).read_text())
               if isinstance(d, dict) and str(d.get("apiVersion", "")).startswith("genfab.dev/"))
    doc = {**doc, "spec": with_overrides(doc["spec"], case.overrides)}
    resource = parse_resource(doc)
    planned = plan(resource, {INPUT: case.inputs})
    counted = next(s.samples for s in planned.stages if s.name == case.counted)
    return estimate(planned, gpu, resource.spec.parallelism), counted


@dataclass(frozen=True)
class Row:
    case: Case
    gpu: str
    samples: int | None
    gpu_hours: float
    lab_hours: float | None
    peak_gib: float | None
    missing: list[str]
    """Stages on a GPU without a measurement on this kind (left out of the GPU-hours)."""
    no_lab: list[str]
    """Stages estimated without a lab's way."""
    cpu_only: bool

    @property
    def per_unit(self) -> float | None:
        return None if not self.samples else self.gpu_hours * self.case.per / self.samples

    @property
    def ratio(self) -> float | None:
        return None if not self.lab_hours else self.gpu_hours / self.lab_hours


def row(case: Case, gpu: str, examples: Path) -> Row:
    est, samples = case_estimate(case, gpu, examples)
    peaks = [s.peak_gib for s in est.stages if s.state == "estimated" and s.peak_gib is not None]
    return Row(case, gpu, samples, est.gpu_hours, est.lab_gpu_hours, max(peaks, default=None), est.missing,
               est.without_lab, all(s.state in ("cpu", "skipped") for s in est.stages))


def rows(examples: Path) -> list[Row]:
    """Every case on every measured GPU kind where at least one of its GPU stages is calibrated (and on
    the first kind for a case on CPUs only, or measured on none: its row says it was not measured)."""
    out = []
    for case in CASES:
        found = [row(case, gpu, examples) for gpu in measured_kinds()]
        kept = [r for r in found if r.gpu_hours > 0 and not r.cpu_only]
        out.extend(kept or found[:1])
    return out


def _cell(value: float | None, digits: int = 2) -> str:
    """Two decimals, or three significant digits below 0.1 (a relit pair costs thousandths)."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if value >= 0.1 or value == 0 else f"{value:.3g}"


def table(examples: Path = Path("examples")) -> list[str]:
    lines = ["| pipeline | settings | GPU | GPU-hours | the lab's way | vs the lab's way | peak GiB | "
             "what is left out |", "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows(examples):
        lab = None if r.lab_hours is None or not r.samples else r.lab_hours * r.case.per / r.samples
        ratio = "-" if r.ratio is None else f"**{r.ratio:.2f}x**"
        unmeasured = not r.cpu_only and r.gpu_hours == 0
        if r.cpu_only:
            left = "runs on CPUs only: no GPU time"
        elif unmeasured:
            left = f"not measured at these settings on any GPU kind: {', '.join(r.missing)}"
        else:
            parts = ([f"not measured on {r.gpu.upper()}: {', '.join(r.missing)}"] if r.missing else []) + (
                [f"no lab's way measured for: {', '.join(r.no_lab)}"] if r.no_lab else [])
            left = "; ".join(parts) or "-"
        unit = f"per {r.case.per} {r.case.samples}" if r.case.per > 1 else f"per {r.case.samples}"
        # a total that leaves stages out is a lower bound, and says so
        hours = ("0" if r.cpu_only else "-" if unmeasured
                 else ("≥ " if r.missing else "") + f"{_cell(r.per_unit)} {unit}")
        peak = _cell(r.peak_gib, 1) if not r.missing else "-"
        lines.append(f"| {r.case.pipeline} | {r.case.settings} (`{r.case.example}`) | {r.gpu.upper()} | "
                     f"{hours} | {_cell(lab)} | {ratio} | {peak} | {left} |")
    return lines
