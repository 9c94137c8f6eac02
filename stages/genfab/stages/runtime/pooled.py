"""A CPU stage by composition (`PooledStage`): the pixels of each sample in a pool of worker processes,
the reads and writes in the shard process, and optionally a model over each chunk of a batch in between
(relighting's segment, albedo, degrade and recombine; reference-object's CV augmentation).

    def load(settings: BlurSettings, ctx: StageContext) -> Blur:       # once per worker process
        return Blur(settings.radius, ctx.stage_output("segment"))

    def read(blur: Blur, sample: Sample) -> BlurJob:                 # a reader thread, a batch ahead
        return {"id": sample.id, "image": decode(blur.source.read_bytes(f"{sample.id}.png")),
                "radius": blur.radius}

    def blur(job: BlurJob) -> Computed:                              # a worker process (module level)
        return {"files": {f"{job['id']}_blur.png": encode(gaussian(job["image"], job["radius"]))}}

    BLUR = PooledStage("blur", load, read, blur)

The runtime reads the next batch while this one computes, hands each chunk (`batchSize` jobs: a model's
batch) to `prepare` and then to the pool as soon as it is prepared, so the model and the workers run at
the same time; with `device`, chunks are prepared on threads of their own (each on its CUDA stream) a
batch ahead, so the GPU does not wait for a batch's last writes (benchmarks/results/relighting.md)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypedDict, TypeVar

from genfab.inventory import ShardReport
from genfab.stages.runtime.context import StageContext
from genfab.stages.runtime.errors import BadInput, FatalError
from genfab.stages.runtime.parallel import CpuPool, cpu_workers
from genfab.stages.runtime.stage import Sample, Stage, sample_seed
from genfab.storage import StorageError

BATCH_PER_WORKER = 8
DEVICE_THREADS = 2
"""Threads preparing chunks of a model stage (`PooledStage.device`). With one, the GPU idles while the
thread does a chunk's host side (which instances passed, the per-image work it queues from that, the
masks' copies back) and until it starts the next chunk's forward pass. With two, the next chunk's
forward is queued meanwhile; each thread on its own CUDA stream, so one thread's read back waits only
for its own chunk. Chunks are still delivered in order (benchmarks/results/relighting.md)."""
S = TypeVar("S")
M = TypeVar("M")


class Computed(TypedDict, total=False):
    """What a pooled stage's `compute` returns for one sample, from a worker process (plain data)."""

    files: dict[str, bytes]
    """Output key (relative to the stage's output) -> its bytes, written by the shard process."""
    params: dict[str, Any]
    """What was chosen or measured for the sample: kept in its marker and metadata."""


@dataclass(frozen=True)
class Chunk(Generic[M]):
    """One chunk of a batch as `PooledStage.prepare` gets it."""

    held: M
    samples: list[Sample]
    jobs: list[Any]
    """Per sample what `read` returned, or the exception that failed its read."""
    pool: CpuPool
    """The stage's worker processes (a classical step of `prepare` may map over them)."""

    @property
    def ready(self) -> list[Any]:
        """The jobs whose read succeeded."""
        return [job for job in self.jobs if not isinstance(job, Exception)]


def stage_seed(sample: Sample, base: int, stage: str) -> int:
    """The sample's seed for a stage's draws: fixed by the job seed `base`, the sample and the stage, and
    independent between stages."""
    return sample_seed(base, f"{sample.id}#{stage}")


@dataclass(frozen=True)
class PooledStage(Generic[S, M]):
    """One pooled stage (see the module's docs):
    - `load(settings, ctx)` once per worker process: what `read` and `prepare` use (the stage outputs
      it reads, its models; raise `BadInput` for an unusable config);
    - `read(held, sample)` in a reader thread: the sample's job, plain data (raise `SampleError` to
      drop the sample alone);
    - `prepare(chunk)` in the shard process, per chunk: per sample the job the pool gets or the
      exception that fails it (default: the jobs as read);
    - `compute(job)` in a worker process, a module-level function: `Computed`, whose files the runtime
      writes and whose params go into the sample's marker;
    - `made_by(params)`: what made a sample, where the stage has more than one way (the summary's
      `producedBy`);
    - `delivered(held, sample, result)` after each sample of a batch (None: it failed): what the shard
      process adds (a file it kept, a count)."""

    name: str
    load: Callable[[S, StageContext], M]
    read: Callable[[M, Sample], Any]
    compute: Callable[[Any], Computed]
    prepare: Callable[[Chunk[M]], list[Any]] | None = None
    device: Callable[[M], AbstractContextManager[Any]] | None = None
    """A model stage's: the context a device thread prepares a chunk in (its thread's CUDA stream,
    `Placement.thread_stream`). Given, chunks are prepared on `DEVICE_THREADS` threads, a batch ahead."""
    made_by: Callable[[dict[str, Any]], str | None] | None = None
    delivered: Callable[[M, Sample, Computed | None], None] | None = None
    finish: Callable[[M | None, StageContext], None] | None = None
    """As `SampleStage.finish`: after each shard's samples (None: nothing was loaded)."""
    after_shard: Callable[[StageContext, ShardReport], None] | None = None
    close: Callable[[M], None] | None = None
    batch_size: int = 16
    """Jobs per `prepare` call (a model's batch; `spec.stages.<name>.batchSize` overrides it). A batch
    holds at least `BATCH_PER_WORKER` samples per worker process."""
    marker_dir: str = "_markers"
    """Flat layouts (`{id}_albedo.png`): the markers go aside."""
    prunes_outputs: bool = False

    def stage(self) -> Stage[S]:
        """The runtime's `Stage` running these functions."""
        return PooledRun(self)


class PooledRun(Stage[Any]):
    """`Stage` over a `PooledStage`: the pool, the reader threads and the device threads of one worker."""

    def __init__(self, spec: PooledStage[Any, Any]) -> None:
        self.spec = spec
        self.held: Any = None
        self.ahead: dict[str, Future[Any]] = {}
        self.next_batch: list[Sample] = []
        self.queued: tuple[list[str], list[tuple[int, Callable[[], list[Any]]]]] | None = None

    @property  # `Stage.name` is a class attribute; here it is the instance's
    def name(self) -> str:  # type: ignore[override]
        return self.spec.name

    @property  # as `name`
    def prunes_outputs(self) -> bool:  # type: ignore[override]
        return self.spec.prunes_outputs

    def marker_folder(self, ctx: StageContext) -> str:
        return self.spec.marker_dir

    def setup(self, ctx: StageContext) -> None:
        self.ctx = ctx
        workers = cpu_workers(ctx.env)
        self.pool = CpuPool(workers)
        self.pool.start(self.spec.compute.__module__)
        self.readers = ThreadPoolExecutor(workers, thread_name_prefix="genfab-read")
        if self.spec.device is not None:
            self.device = ThreadPoolExecutor(DEVICE_THREADS, thread_name_prefix="genfab-device")
        self.held = self.spec.load(self.settings, ctx)

    def chunk_size(self, ctx: StageContext) -> int:
        """Jobs per `prepare` call: `spec.stages.<name>.batchSize`, else the stage's own. A batch holds
        several chunks, and each chunk's `compute` starts in the pool as soon as that chunk is prepared,
        while the shard process prepares the next one: the model and the workers run at the same time."""
        return max(1, ctx.cfg.batch_size or self.spec.batch_size)

    def samples_per_batch(self, ctx: StageContext) -> int:
        """A batch ends at its slowest sample, and the pool idles while the shard process hands the
        results over: several samples per worker keep the workers busy (measured in
        benchmarks/results/reference_object.md). At least one chunk."""
        workers = self.pool.workers if hasattr(self, "pool") else 1  # no pool: nothing to produce (all reused)
        return max(self.chunk_size(ctx), BATCH_PER_WORKER * workers)

    def prefetch(self, samples: list[Sample]) -> None:
        """Read the next batch's inputs while this one computes; with `device`, the running batch queues
        its chunks on the device threads too."""
        # Added to, not replaced: the runtime asks for batch k+1 just before it hands over batch k, whose
        # reads (asked for a batch earlier) are still here until `_read` takes them.
        self.ahead.update({s.id: self.readers.submit(self.spec.read, self.held, s) for s in samples})
        self.next_batch = samples

    def _read(self, sample: Sample) -> Future[Any]:
        return self.ahead.pop(sample.id, None) or self.readers.submit(self.spec.read, self.held, sample)

    def _prepare(self, samples: list[Sample], reads: list[Future[Any]]) -> list[Any]:
        jobs = [_outcome(read) for read in reads]
        if self.spec.prepare is None:
            return jobs
        prepared = self.spec.prepare(Chunk(self.held, samples, jobs, self.pool))
        if len(prepared) != len(samples):
            raise TypeError(f"stage {self.spec.name}: prepare returned {len(prepared)} jobs for {len(samples)} "
                            "samples")
        return prepared

    def _prepare_on_device(self, samples: list[Sample], reads: list[Future[Any]]) -> list[Any]:
        assert self.spec.device is not None
        with self.spec.device(self.held):
            return self._prepare(samples, reads)

    def chunks(self, samples: list[Sample]) -> list[tuple[int, Callable[[], list[Any]]]]:
        """The batch's chunks (first index, and what gives its prepared jobs), in order: prepared when
        asked for, or already queued on the device threads (`device`)."""
        reads = [self._read(s) for s in samples]
        size = self.chunk_size(self.ctx)
        parts = [(start, samples[start:start + size], reads[start:start + size])
                 for start in range(0, len(samples), size)]
        if self.spec.device is None:
            return [(start, partial(self._prepare, some, read)) for start, some, read in parts]
        return [(start, self.device.submit(self._prepare_on_device, some, read).result)
                for start, some, read in parts]

    def process_batch(self, samples: list[Sample]) -> list[Exception | None]:
        ids = [s.id for s in samples]
        chunks = self.queued[1] if self.queued and self.queued[0] == ids else self.chunks(samples)
        self.queued = None
        if self.spec.device is not None and self.next_batch:  # behind this batch's chunks on the device
            self.queued = ([s.id for s in self.next_batch], self.chunks(self.next_batch))
        self.next_batch = []
        errors: list[Exception | None] = [None] * len(samples)
        started: list[tuple[int, Future[Any]]] = []
        for start, outcomes in chunks:
            for i, job in enumerate(outcomes(), start):
                if isinstance(job, Exception):
                    errors[i] = job
                else:
                    started.append((i, self.pool.submit(self.spec.compute, job)))
        results: dict[int, Computed] = {}
        for i, future in started:  # in the batch's order
            result = self.pool.result(future)
            if isinstance(result, Exception):
                errors[i] = result
            else:
                self._deliver(samples[i], result)
                results[i] = result
        if self.spec.delivered is not None:
            for i, sample in enumerate(samples):
                if i not in results:
                    self.spec.delivered(self.held, sample, None)
        return errors

    def _deliver(self, sample: Sample, result: Computed) -> None:
        """Write `compute`'s files and keep its params in the sample's marker."""
        for key, data in result.get("files", {}).items():
            sample.write(key, data)
        sample.params.update(result.get("params", {}))
        if self.spec.made_by is not None:
            sample.produced_by = self.spec.made_by(sample.params)
        if self.spec.delivered is not None:
            self.spec.delivered(self.held, sample, result)

    def finish(self, ctx: StageContext) -> None:
        if self.spec.finish is not None:
            self.spec.finish(self.held, ctx)

    def after_report(self, ctx: StageContext, report: ShardReport) -> None:
        if self.spec.after_shard is not None:
            self.spec.after_shard(ctx, report)

    def abort(self) -> None:
        """Reads not started yet and chunks queued ahead are dropped: at the interpreter's exit a
        pending read never runs, and the device thread would wait for it forever."""
        if hasattr(self, "readers"):
            self.readers.shutdown(wait=False, cancel_futures=True)
        if hasattr(self, "device"):
            self.device.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if hasattr(self, "device"):
            self.device.shutdown(cancel_futures=True)
        if hasattr(self, "pool"):
            self.pool.close()
            self.readers.shutdown()
        if self.spec.close is not None and self.held is not None:
            self.spec.close(self.held)
        self.held = None


def _outcome(read: Future[Any]) -> Any:
    """A read's result, or the exception that fails its sample; errors that end the shard are raised."""
    exc = read.exception()
    if isinstance(exc, FatalError | BadInput | StorageError | MemoryError):
        raise exc
    return exc if isinstance(exc, Exception) else read.result()

