"""DatasetJob `relighting` (seed 003): segment -> albedo -> degrade -> recombine -> (caption) -> organize.

Importing this package only registers the stages (no numpy, OpenCV or torch); each stage module is
imported when its stage runs.
"""

from genfab.stages.runtime.registry import register

for _name, _target in {
    "segment": "genfab.stages.relighting.segment_stage:SegmentStage",
    "albedo": "genfab.stages.relighting.albedo_stage:AlbedoStage",
    "degrade": "genfab.stages.relighting.degrade_stage:DegradeStage",
    "recombine": "genfab.stages.relighting.recombine_stage:RecombineStage",
    "caption": "genfab.stages.relighting.caption_stage:CaptionStage",
    "organize": "genfab.stages.relighting.organize_stage:OrganizeStage",
}.items():
    register(_name, _target)
