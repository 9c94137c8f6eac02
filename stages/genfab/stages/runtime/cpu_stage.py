"""The shape of CPU stages (relighting's, reference-object's CV augmentation): reads and writes in
the shard process, pixels in a pool of worker processes (`compute` is a module-level function of
plain data)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from genfab.stages.runtime import BadInput, FatalError, Sample, Stage, StageContext, sample_seed
from genfab.stages.runtime.parallel import CpuPool, cpu_workers
from genfab.storage import StorageError

BATCH_PER_WORKER = 8
S = TypeVar("S")
T = TypeVar("T")


class CpuSampleStage(Stage[S]):
    marker_dir = "_markers"  # flat layouts (`{id}_albedo.png`): markers go aside
    batch_size: int = 16
    """Samples per `prepare` call (`chunk_size`); a batch holds at least `BATCH_PER_WORKER` samples per
    worker process (`samples_per_batch`)."""
    compute: ClassVar[staticmethod[[dict[str, Any]], dict[str, Any]]]
    """Pure per-sample work: `gather`'s dict in, `{"files": {key: bytes}, "params": {...}}` out."""

    ctx: StageContext
    pool: CpuPool

    def setup(self, ctx: StageContext) -> None:
        self.ctx = ctx
        workers = cpu_workers(ctx.env)
        self.pool = CpuPool(workers)
        self.pool.start(type(self).compute.__module__)
        self.readers = ThreadPoolExecutor(workers, thread_name_prefix="genfab-read")

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

    def gather(self, sample: Sample) -> dict[str, Any]:
        """Read what `compute` needs (in the shard process)."""
        raise NotImplementedError

    def prepare(self, jobs: list[dict[str, Any]]) -> None:
        """Batch work in the shard process before the pool runs (a GPU model over one chunk of the
        batch: `chunk_size` jobs)."""

    def chunk_size(self, ctx: StageContext) -> int:
        """Jobs per `prepare` call (the model's batch): `spec.stages.<name>.batchSize`, else the
        stage's own batch size. A batch holds several chunks (`samples_per_batch` sizes it to keep
        every worker busy), and each chunk's `compute` starts in the pool as soon as that chunk is prepared, while
        the shard process prepares the next one: the GPU and the workers run at the same time."""
        return max(1, ctx.cfg.batch_size or type(self).batch_size)

    def deliver(self, sample: Sample, result: dict[str, Any]) -> None:
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
        """Read the next batch's inputs while this one computes (the GPU model, the worker pool)."""
        self.ahead = {s.id: self.readers.submit(self.read_input, s) for s in samples}

    def read_each(self, samples: list[Sample]) -> list[Any]:
        """`read_input` for every sample in threads (reads and image decoding release the GIL),
        prefetched ones included: per sample its result or the exception that failed it; errors that
        end the shard are raised."""
        ahead = getattr(self, "ahead", {})
        results: list[Any] = []
        for future in [ahead.pop(s.id, None) or self.readers.submit(self.read_input, s) for s in samples]:
            exc = future.exception()
            if isinstance(exc, FatalError | BadInput | StorageError | MemoryError):
                raise exc
            results.append(exc if isinstance(exc, Exception) else future.result())
        return results

    def process_batch(self, samples: list[Sample]) -> list[Exception | None]:
        errors: list[Exception | None] = [None] * len(samples)
        jobs: list[tuple[int, dict[str, Any]]] = []
        for i, job in enumerate(self.read_each(samples)):
            if isinstance(job, Exception):
                errors[i] = job
            else:
                jobs.append((i, job))
        started: list[tuple[int, Future[Any]]] = []
        size = self.chunk_size(self.ctx)
        for start in range(0, len(jobs), size):
            chunk = jobs[start:start + size]
            self.prepare([job for _, job in chunk])
            started += [(i, self.pool.submit(type(self).compute, job)) for i, job in chunk]
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

    def finish(self, ctx: StageContext) -> None:
        if hasattr(self, "pool"):
            self.pool.close()
            self.readers.shutdown()
