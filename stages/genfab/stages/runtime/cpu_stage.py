"""The shape of CPU stages (relighting's, reference-object's CV augmentation): reads and writes in
the shard process, pixels in a pool of worker processes (`compute` is a module-level function of
plain data)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any, ClassVar, TypedDict, TypeVar

from genfab.stages.runtime import BadInput, FatalError, Sample, Stage, StageContext, sample_seed
from genfab.stages.runtime.parallel import CpuPool, cpu_workers
from genfab.storage import StorageError

BATCH_PER_WORKER = 8
DEVICE_THREADS = 2
"""Threads running `prepare_chunk` of a model stage (`prepares_ahead`). With one, the GPU idles while
the thread does a chunk's host side (which instances passed, the per-image work it queues from that,
the masks' copies back) and until it starts the next chunk's forward pass. With two, the next chunk's
forward is queued meanwhile; each thread on its own CUDA stream (`device_stream`), so one thread's
read back waits only for its own chunk. Chunks are still delivered in order
(benchmarks/results/relighting.md)."""
S = TypeVar("S")
T = TypeVar("T")


class Computed(TypedDict, total=False):
    """What a CPU stage's `compute` returns for one sample, from a worker process (plain data)."""

    files: dict[str, bytes]
    """Output key (relative to the stage's output) -> its bytes, written by the shard process."""
    params: dict[str, Any]
    """What was chosen or measured for the sample: kept in its marker and metadata."""


class CpuSampleStage(Stage[S]):
    marker_dir = "_markers"  # flat layouts (`{id}_albedo.png`): markers go aside
    batch_size: int = 16
    """Samples per `prepare` call (`chunk_size`); a batch holds at least `BATCH_PER_WORKER` samples per
    worker process (`samples_per_batch`)."""
    compute: ClassVar[staticmethod[[Any], Computed]]
    """Pure per-sample work: the stage's job (what `gather` read, a TypedDict of its own) in, `Computed`
    out; a module-level function, run in a worker process."""
    prepares_ahead: ClassVar[bool] = False
    """Model stages: `prepare` (the GPU) runs in threads of its own (`DEVICE_THREADS`), chunk after
    chunk, and goes on to the next batch's chunks as soon as their inputs are read, while the shard
    process still hands this batch to the pool and delivers it; otherwise the GPU waits for every
    batch's last writes (benchmarks/results/relighting.md)."""

    ctx: StageContext
    pool: CpuPool

    def setup(self, ctx: StageContext) -> None:
        self.ctx = ctx
        workers = cpu_workers(ctx.env)
        self.pool = CpuPool(workers)
        self.pool.start(type(self).compute.__module__)
        self.readers = ThreadPoolExecutor(workers, thread_name_prefix="genfab-read")
        self.ahead: dict[str, Future[Any]] = {}
        self.next_batch: list[Sample] = []
        self.queued: tuple[list[str], list[tuple[int, Callable[[], list[Any]]]]] | None = None
        if self.prepares_ahead:
            self.device = ThreadPoolExecutor(DEVICE_THREADS, thread_name_prefix="genfab-device")

    def samples_per_batch(self, ctx: StageContext) -> int:
        """A batch ends at its slowest sample, and the pool idles while the shard process hands the
        results over: several samples per worker keep the workers busy (measured in
        benchmarks/results/reference_object.md). At least one chunk."""
        workers = self.pool.workers if hasattr(self, "pool") else 1  # no pool: nothing to produce (all reused)
        return max(self.chunk_size(ctx), BATCH_PER_WORKER * workers)

    def stage_seed(self, sample: Sample, base: int) -> int:
        """The sample's seed for this stage's draws: fixed by the job seed `base`, the sample and the
        stage, and independent between stages."""
        return sample_seed(base, f"{sample.id}#{self.name}")

    def gather(self, sample: Sample) -> Any:
        """Read what `compute` needs (in the shard process): the stage's job."""
        raise NotImplementedError

    def prepare(self, jobs: list[Any]) -> None:
        """Batch work in the shard process before the pool runs (a GPU model over one chunk of the
        batch: `chunk_size` jobs)."""

    def device_stream(self) -> AbstractContextManager[Any]:
        """What a device thread runs `prepare_chunk` in (model stages: the thread's CUDA stream)."""
        return nullcontext()

    def prepare_on_device(self, samples: list[Sample], reads: list[Future[Any]]) -> list[Any]:
        with self.device_stream():
            return self.prepare_chunk(samples, reads)

    def prepare_chunk(self, samples: list[Sample], reads: list[Future[Any]]) -> list[Any]:
        """One chunk, from its reads to what the pool gets: per sample its prepared job, or the
        exception that failed it (the shard's own errors are raised)."""
        outcomes = [self.read_outcome(read) for read in reads]
        self.prepare([job for job in outcomes if not isinstance(job, Exception)])
        return outcomes

    def chunk_size(self, ctx: StageContext) -> int:
        """Jobs per `prepare` call (the model's batch): `spec.stages.<name>.batchSize`, else the
        stage's own batch size. A batch holds several chunks (`samples_per_batch` sizes it to keep
        every worker busy), and each chunk's `compute` starts in the pool as soon as that chunk is prepared, while
        the shard process prepares the next one: the GPU and the workers run at the same time."""
        return max(1, ctx.cfg.batch_size or type(self).batch_size)

    def deliver(self, sample: Sample, result: Computed) -> None:
        """Write `compute`'s files and keep its params in the sample's marker."""
        for key, data in result.get("files", {}).items():
            sample.write(key, data)
        sample.params.update(result.get("params", {}))
        sample.produced_by = self.produced_by(sample.params)

    def produced_by(self, params: dict[str, Any]) -> str | None:
        """What made a sample, from its params, where a stage has more than one way (the summary's
        `producedBy`); None where there is one."""
        return None

    def read_input(self, sample: Sample) -> Any:
        """What the shard process reads for one sample (default: `gather`); runs in a thread."""
        return self.gather(sample)

    def prefetch(self, samples: list[Sample]) -> None:
        """Read the next batch's inputs while this one computes (the GPU model, the worker pool);
        with `prepares_ahead`, the running batch queues its chunks on the device thread too."""
        # Added to, not replaced: the runtime asks for batch k+1 just before it hands over batch k, whose
        # reads (asked for a batch earlier) are still here until `read` takes them.
        self.ahead.update({s.id: self.readers.submit(self.read_input, s) for s in samples})
        self.next_batch = samples

    def read(self, sample: Sample) -> Future[Any]:
        return self.ahead.pop(sample.id, None) or self.readers.submit(self.read_input, sample)

    @staticmethod
    def read_outcome(read: Future[Any]) -> Any:
        """A read's result, or the exception that fails its sample; errors that end the shard are
        raised."""
        exc = read.exception()
        if isinstance(exc, FatalError | BadInput | StorageError | MemoryError):
            raise exc
        return exc if isinstance(exc, Exception) else read.result()

    def chunks(self, samples: list[Sample]) -> list[tuple[int, Callable[[], list[Any]]]]:
        """The batch's chunks (first index, and what gives its `prepare_chunk` outcomes), in order:
        run when asked for, or already queued on the device thread (`prepares_ahead`)."""
        reads = [self.read(s) for s in samples]
        size = self.chunk_size(self.ctx)
        parts = [(start, samples[start:start + size], reads[start:start + size])
                 for start in range(0, len(samples), size)]
        if not self.prepares_ahead:
            return [(start, partial(self.prepare_chunk, some, read)) for start, some, read in parts]
        return [(start, self.device.submit(self.prepare_on_device, some, read).result) for start, some, read in parts]

    def process_batch(self, samples: list[Sample]) -> list[Exception | None]:
        ids = [s.id for s in samples]
        chunks = self.queued[1] if self.queued and self.queued[0] == ids else self.chunks(samples)
        self.queued = None
        if self.prepares_ahead and self.next_batch:  # behind this batch's chunks on the device thread
            self.queued = ([s.id for s in self.next_batch], self.chunks(self.next_batch))
        self.next_batch = []
        errors: list[Exception | None] = [None] * len(samples)
        started: list[tuple[int, Future[Any]]] = []
        for start, outcomes in chunks:
            for i, job in enumerate(outcomes(), start):
                if isinstance(job, Exception):
                    errors[i] = job
                else:
                    started.append((i, self.pool.submit(type(self).compute, job)))
        return self.deliver_started(samples, started, errors)

    def deliver_started(self, samples: list[Sample], started: list[tuple[int, Future[Any]]],
                        errors: list[Exception | None]) -> list[Exception | None]:
        """Wait for each started pool call in the batch's order: `deliver` its result, or record the
        exception that failed its sample."""
        for i, future in started:
            result = self.pool.result(future)
            if isinstance(result, Exception):
                errors[i] = result
            else:
                self.deliver(samples[i], result)
        return errors

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
