"""DatasetJob `relighting` (seed 003): segment -> albedo -> degrade -> recombine -> (caption) -> organize.

Importing this package imports nothing (no numpy, OpenCV or torch); each stage module is imported
when its stage runs.
"""

STAGES = {
    "segment": "genfab.stages.relighting.segment_stage:SegmentStage",
    "albedo": "genfab.stages.relighting.albedo_stage:AlbedoStage",
    "degrade": "genfab.stages.relighting.degrade_stage:DegradeStage",
    "recombine": "genfab.stages.relighting.recombine_stage:RecombineStage",
    "caption": "genfab.stages.relighting.caption_stage:CaptionStage",
    "organize": "genfab.stages.relighting.organize_stage:OrganizeStage",
}
"""Stage name -> `module:Class`, registered by genfab.stages.runtime.registry."""
