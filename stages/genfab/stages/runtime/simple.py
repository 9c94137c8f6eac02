"""A stage as three functions (`SampleStage`): what a worker loads once, what it makes of one sample (or of
a batch), and what made it. Nothing to subclass and no hooks to know: the runtime calls the functions it is
given, and everything else of the stage contract (skipping committed samples, markers, retries, reports,
seeds, warm workers taking shard after shard) stays the runtime's.

    from genfab.stages.runtime import Sample, SampleStage, StageContext

    def load(settings: DigestSettings, ctx: StageContext) -> Hasher:   # once per worker process
        return Hasher(settings.algorithm)

    def make(hasher: Hasher, sample: Sample) -> None:                 # one sample
        sample.write(f"{sample.id}.txt", hasher.digest(sample.read_source()))

    DIGEST = SampleStage("digest", load, make, made_by=lambda hasher: f"hashlib:{hasher.name}")

A pipeline declares it by import path like a `Stage` class (`"my.module:DIGEST"`); a custom stage's image
runs it with `run(DIGEST)`. A file about the whole run after each shard (`after_shard`) and an output folder
kept to the current config (`prunes_outputs`), reading the next batch ahead (`prefetch`) are fields too;
a stage whose pixels are CPU work for a pool of processes is a `PooledStage` (genfab.stages.runtime.pooled)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from genfab.inventory import SampleRef, ShardReport
from genfab.stages.runtime.context import StageContext
from genfab.stages.runtime.stage import Sample, Stage

S = TypeVar("S")
M = TypeVar("M")


@dataclass(frozen=True)
class Given(Generic[S]):
    """What a stage without models holds: its settings and its context (`given` is its `load`)."""

    settings: S
    ctx: StageContext


def given(settings: S, ctx: StageContext) -> Given[S]:
    return Given(settings, ctx)


@dataclass(frozen=True)
class SampleStage(Generic[S, M]):
    """One stage, by composition: `load(settings, ctx)` once per worker process (models, pools: whatever
    later samples reuse; raise `BadInput` for an unusable config; `given` where there is nothing to load),
    then `make(loaded, sample)` for each sample (raise `SampleError(reason)` to drop it alone), or
    `make_batch(loaded, samples)` returning per sample None or the exception that failed it, or
    `make_set(loaded, result, units)` once over them all. `made_by(loaded)` names what produced the
    outputs (a model id, a method): it goes into each sample's marker (`params.producedBy`) and the run's
    summary, unless the sample set its own (`sample.produced_by`). `close(loaded)` stops what `load`
    started, once, when the worker is done with the stage."""

    name: str
    load: Callable[[S, StageContext], M]
    make: Callable[[M, Sample], None] | None = None
    make_batch: Callable[[M, list[Sample]], Sequence[Exception | None]] | None = None
    make_set: Callable[[M, Sample, list[SampleRef]], None] | None = None
    """A stage of one result over all its units (`Stage.whole_set`: the difix split and adapter): called once
    with the result to write through and every unit; reused only while the config and the unit list stay."""
    made_by: Callable[[M], str] | None = None
    batch_size: int | Callable[[M], int] = 1
    """Samples handed to `make_batch` at once (`spec.stages.<name>.batchSize` overrides it), or a function of
    what `load` returned (3DGS: its `scenesPerPod`)."""
    marker_dir: str = ""
    """As `Stage.marker_dir`: empty keeps each sample's marker in its own folder of the stage's layout; a
    flat layout (`digests/{id}.txt`) names a folder for them (`_markers`)."""
    close: Callable[[M], None] | None = None
    finish: Callable[[M | None, StageContext], None] | None = None
    """Called after each shard's samples, before its final report: a file the shard's samples make together
    (reference-object's scene records, merged from every shard). Given None when nothing was loaded (every
    sample of the shard reused)."""
    after_shard: Callable[[StageContext, ShardReport], None] | None = None
    """Called after each shard's final report is written: a file about the whole run that follows its
    shards (reference-object's `pipeline_state.json`)."""
    prunes_outputs: bool = False
    """As `Stage.prunes_outputs`: the stage's output folder keeps only what its current config made."""
    prefetch: Callable[[M, list[Sample]], None] | None = None
    """Given the next batch just before `make_batch` gets the current one: start reading it (and more:
    reference-object's annotation queues its images to its model threads) while this one computes."""
    abort: Callable[[M], None] | None = None
    """The shard ends on an error in the middle of its samples: stop background work at once (reads not
    started are dropped), so nothing keeps the process from exiting. `close` still follows."""

    def __post_init__(self) -> None:
        if sum(f is not None for f in (self.make, self.make_batch, self.make_set)) != 1:
            raise TypeError(f"SampleStage {self.name!r}: give exactly one of make, make_batch and make_set")
        if not self.name:
            raise TypeError("SampleStage: a name is required (the stage's name in its pipeline)")

    def stage(self) -> Stage[S]:
        """The runtime's `Stage` running these functions."""
        return _FunctionStage(self)


class _FunctionStage(Stage[Any]):
    """`Stage` over a `SampleStage`'s functions (what `run`, `main` and the registry are handed)."""

    def __init__(self, spec: SampleStage[Any, Any]) -> None:
        self.spec = spec
        self.loaded: Any = None
        if isinstance(spec.batch_size, int):
            self.batch_size = spec.batch_size

    def samples_per_batch(self, ctx: StageContext) -> int:
        size = self.spec.batch_size
        if callable(size) and not ctx.cfg.batch_size:  # asked after `load` (nothing loaded: nothing to make)
            return max(1, size(self.loaded)) if self.loaded is not None else 1
        return super().samples_per_batch(ctx)

    @property  # `Stage.name` is a class attribute; here it is the instance's
    def name(self) -> str:  # type: ignore[override]
        return self.spec.name

    @property  # as `name`
    def whole_set(self) -> bool:  # type: ignore[override]
        return self.spec.make_set is not None

    @property  # as `name`
    def prunes_outputs(self) -> bool:  # type: ignore[override]
        return self.spec.prunes_outputs

    def finish(self, ctx: StageContext) -> None:
        if self.spec.finish is not None:
            self.spec.finish(self.loaded, ctx)

    def after_report(self, ctx: StageContext, report: ShardReport) -> None:
        if self.spec.after_shard is not None:
            self.spec.after_shard(ctx, report)

    def process_set(self, sample: Sample, units: list[SampleRef]) -> None:
        assert self.spec.make_set is not None
        self.spec.make_set(self.loaded, sample, units)

    def marker_folder(self, ctx: StageContext) -> str:
        return self.spec.marker_dir

    def setup(self, ctx: StageContext) -> None:
        self.loaded = self.spec.load(self.settings, ctx)

    def process(self, sample: Sample) -> None:
        assert self.spec.make is not None
        self.spec.make(self.loaded, sample)
        self._record(sample)

    def process_batch(self, samples: list[Sample]) -> list[Exception | None]:
        if self.spec.make_batch is None:
            return super().process_batch(samples)
        errors = list(self.spec.make_batch(self.loaded, samples))
        if len(errors) != len(samples):
            raise TypeError(f"stage {self.spec.name}: make_batch returned {len(errors)} results for "
                            f"{len(samples)} samples")
        for sample, error in zip(samples, errors, strict=True):
            if error is None:
                self._record(sample)
        return errors

    def _record(self, sample: Sample) -> None:
        if self.spec.made_by is None:
            return
        sample.produced_by = sample.produced_by or self.spec.made_by(self.loaded)
        sample.params.setdefault("producedBy", sample.produced_by)

    def prefetch(self, samples: list[Sample]) -> None:
        if self.spec.prefetch is not None and self.loaded is not None:
            self.spec.prefetch(self.loaded, samples)

    def abort(self) -> None:
        if self.spec.abort is not None and self.loaded is not None:
            self.spec.abort(self.loaded)

    def close(self) -> None:
        if self.spec.close is not None and self.loaded is not None:
            self.spec.close(self.loaded)
        self.loaded = None
