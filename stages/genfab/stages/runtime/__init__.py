"""The stage runtime: the Pod side of the stage contract, shared by built-in and custom stages.

    from genfab.stages.runtime import Sample, SampleStage, run

    def make(size: int, sample: Sample) -> None:
        sample.write(f"{sample.id}.png", make_thumbnail(sample.read_source(), size))

    THUMBNAILS = SampleStage("thumbnails", lambda settings, ctx: int(settings.get("size", 256)), make)

    if __name__ == "__main__":
        run(THUMBNAILS)
"""

from genfab.stages.runtime.context import StageContext, load_context
from genfab.stages.runtime.errors import BadInput, FatalError, SampleError
from genfab.stages.runtime.loop import main, run, run_shard
from genfab.stages.runtime.pooled import Computed, PooledStage
from genfab.stages.runtime.simple import Given, SampleStage, given
from genfab.stages.runtime.stage import Sample, Stage, retry_seed, sample_seed

__all__ = [
    "BadInput",
    "Computed",
    "FatalError",
    "Given",
    "PooledStage",
    "Sample",
    "SampleError",
    "SampleStage",
    "Stage",
    "StageContext",
    "given",
    "load_context",
    "main",
    "retry_seed",
    "run",
    "run_shard",
    "sample_seed",
]
