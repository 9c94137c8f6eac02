"""Final stage `organize`: the lab's relighting `data/raw/` and `data/outputs/` (the stage writes under `data/`).

- `data/raw/{source file}`: the input as given, bytes unchanged (the lab's input folder);
- `data/outputs/{id}_input.png`: the original input at its own size (the lab's relighting "original input"),
  a PNG copy of the source; `{id}_input_working.png` beside it when `input.maxSide` made the
  pipeline work smaller: the input at the working size, the other half of the training pair;
- `{id}_albedo.png`, `{id}_output.png`, `{id}_foreground.png` and `{id}_metadata.json` (every
  stage's parameters, config hashes and files)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from genfab.api.pipelines.relighting import OrganizeSettings
from genfab.api.reasons import QUALITY_OUT_OF_RANGE
from genfab.inventory import input_samples
from genfab.stages.relighting.images import decode_color, encode, image_size, orientation, working_size
from genfab.stages.runtime import BadInput, Sample, SampleError, SampleStage, StageContext
from genfab.storage import Storage
from genfab.storage.markers import read_marker

COPIES = (  # (output suffix, stage, key suffix in that stage's folder)
    ("albedo", "albedo", "albedo.png"),
    ("output", "recombine", "composite.png"),
    ("foreground", "segment", "foreground.png"),
)
STAGES = ("segment", "albedo", "degrade", "recombine", "caption")


OUTPUTS = "outputs"
RAW = "raw"


@dataclass(frozen=True)
class Sources:
    """What an organize worker reads once: the job input's files by sample id and the stages it gathers."""

    settings: OrganizeSettings
    ctx: StageContext
    inputs: Storage
    sources: dict[str, str]
    stages: dict[str, tuple[Storage, str]]
    """Each upstream stage's output and config hash (caption only where it ran)."""

    @property
    def caption(self) -> bool:
        return self.settings.captions and "caption" in self.stages


def load(settings: OrganizeSettings, ctx: StageContext) -> Sources:
    if not ctx.input_uris:
        raise BadInput("organize needs the job input URI as its first input (to copy {id}_input.png)")
    inputs, refs = input_samples(ctx.cfg, ctx.open)
    # caption is optional: only the stages this one runs after
    stages = {name: (ctx.stage_output(name), ctx.stage_hash(name)) for name in STAGES if ctx.runs_after(name)}
    return Sources(settings, ctx, inputs, {ref.id: ref.source for ref in refs if ref.source is not None}, stages)


def organize(src: Sources, sample: Sample) -> None:
    sid, settings = sample.id, src.settings
    source = src.sources.get(sid)
    if source is None:
        raise BadInput(f"input file of sample {sid} is gone from {src.inputs.uri}")
    stages: dict[str, Any] = {}
    for name, (storage, config_hash) in src.stages.items():
        marker = read_marker(storage, f"_markers/{sid}")
        stages[name] = {"configHash": config_hash, "params": (marker.extra.get("params", {}) if marker else {}),
                        "seconds": marker.timings.get("seconds") if marker else None}
    quality = {k: v for stage in stages.values() for k, v in (stage["params"].get("quality") or {}).items()}
    missed = settings.gate.missed(quality)
    if missed is not None:  # before anything is written: the sample is not in the dataset
        raise SampleError(QUALITY_OUT_OF_RANGE, missed)
    raw = src.inputs.read_bytes(source)
    sample.write(f"{RAW}/{source}", raw)
    width, height = image_size(raw)
    is_png = PurePosixPath(source).suffix.lower() == ".png"
    upright = orientation(raw) == 1  # else turned as segment saw it: one orientation rule (runtime.pictures)
    sample.write(f"{OUTPUTS}/{sid}_input.png", raw if is_png and upright else encode(decode_color(raw)))
    files = {"raw": f"../{RAW}/{source}", "input": f"{sid}_input.png"}
    if working_size(width, height, settings.max_side) != (width, height):
        sample.write(f"{OUTPUTS}/{sid}_input_working.png", encode(decode_color(raw, settings.max_side)))
        files["inputWorking"] = f"{sid}_input_working.png"
    for out, stage, suffix in COPIES:
        storage, _ = src.stages[stage]
        sample.write(f"{OUTPUTS}/{sid}_{out}.png", storage.read_bytes(f"{sid}_{suffix}"))
        files[out] = f"{sid}_{out}.png"
    meta: dict[str, Any] = {
        "sampleId": sid,
        "source": src.inputs.child(source),
        "files": files,
        "lighting": stages.get("degrade", {}).get("params", {}),
        "quality": quality,
        "stages": stages,
        "pipeline": "relighting",
        "resource": src.ctx.cfg.resource.to_dict(),
    }
    if src.caption:
        storage, _ = src.stages["caption"]
        meta["caption"] = storage.read_bytes(f"{sid}_caption.txt").decode().strip()
    sample.write_json(f"{OUTPUTS}/{sid}_metadata.json", meta)


# markers in data/_markers/: data/outputs/ holds the samples only
ORGANIZE = SampleStage("organize", load, organize, marker_dir="_markers")
