"""A `PooledStage` runs a batch chunk by chunk: a chunk's `compute` starts in the worker pool as soon as
its `prepare` (the GPU model, in model stages) is done, while the next chunk is prepared."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from genfab.stages.runtime.parallel import CpuPool
from genfab.stages.runtime.pooled import BATCH_PER_WORKER, DEVICE_THREADS, Chunk, PooledRun, PooledStage


def mark_done(job: dict[str, Any]) -> dict[str, Any]:
    """The pool's work: leaves a file saying it ran (the test sees it from the shard process)."""
    if job["id"] == "bad":
        raise ValueError("this sample fails in its worker")
    Path(job["dir"], job["id"]).write_text("done")
    return {"params": {"id": job["id"]}}


class Chunked:
    """What the test stage holds (its `load` returns it): what its functions saw, in order."""

    batch_size = 2

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.prepared: list[list[str]] = []
        self.seen_before_prepare: list[list[str]] = []
        self.delivered: list[str] = []
        self.failed: list[str] = []
        """Samples `delivered` was told failed (its result None)."""

    def gather(self, sample: Any) -> dict[str, Any]:
        return {"id": sample.id, "dir": str(self.folder)}

    def prepare(self, jobs: list[dict[str, Any]]) -> None:
        # What the pool finished before this chunk's "model call": with chunks overlapping, the
        # previous chunk's work appears here while this one waits.
        if self.prepared:
            earlier = [i for i in self.prepared[-1] if i != "bad"]  # a failed sample leaves nothing
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not all((self.folder / i).exists() for i in earlier):
                time.sleep(0.02)
        self.seen_before_prepare.append(sorted(p.name for p in self.folder.iterdir()))
        self.prepared.append([job["id"] for job in jobs])

    def deliver(self, sample: Any, result: dict[str, Any]) -> None:
        self.delivered.append(result["params"]["id"])

    on_device = False
    """Prepare on the device threads (`PooledStage.device`, entering `device_stream`)."""

    def device_stream(self) -> Any:
        return nullcontext()

    def run(self) -> PooledRun:
        """The runtime's stage over functions that call this object's methods."""
        def prepare(chunk: Chunk[Chunked]) -> list[Any]:
            self.prepare(chunk.ready)
            return chunk.jobs

        def delivered(held: Chunked, sample: Any, result: Any) -> None:
            if result is not None:
                self.deliver(sample, result)
            else:
                self.failed.append(sample.id)

        device = (lambda held: self.device_stream()) if self.on_device else None
        spec = PooledStage("chunked", lambda settings, ctx: self, lambda held, sample: self.gather(sample), mark_done,
                           prepare=prepare, device=device, delivered=delivered, batch_size=self.batch_size)
        stage = PooledRun(spec)
        stage.settings = None
        return stage


def context(workers: int, batch_size: int | None) -> Any:
    return SimpleNamespace(env={"GENFAB_CPU_WORKERS": str(workers)}, cfg=SimpleNamespace(batch_size=batch_size))


def test_each_chunks_work_starts_in_the_pool_while_the_next_chunk_is_prepared(tmp_path: Path) -> None:
    rec = Chunked(tmp_path)
    stage = rec.run()
    ctx = context(workers=2, batch_size=None)
    stage.setup(ctx)
    try:
        samples = [SimpleNamespace(params={}, id=f"s{i}") for i in range(5)]
        errors = stage.process_batch(samples)  # type: ignore[arg-type]
    finally:
        stage.finish(ctx)
    assert errors == [None] * 5
    assert rec.prepared == [["s0", "s1"], ["s2", "s3"], ["s4"]]  # the stage's own batch size
    # the first chunk's work was done in the pool before the second chunk's prepare returned
    assert rec.seen_before_prepare[1] == ["s0", "s1"]
    assert rec.seen_before_prepare[2] == ["s0", "s1", "s2", "s3"]
    assert rec.delivered == ["s0", "s1", "s2", "s3", "s4"]  # in the batch's order


def test_a_failing_sample_fails_alone_and_batch_size_sets_the_chunk(tmp_path: Path) -> None:
    rec = Chunked(tmp_path)
    stage = rec.run()
    ctx = context(workers=1, batch_size=3)  # in-process pool: the same chunks, done on submit
    stage.setup(ctx)
    try:
        samples = [SimpleNamespace(params={}, id=i) for i in ("a", "bad", "c", "d")]
        errors = stage.process_batch(samples)  # type: ignore[arg-type]
    finally:
        stage.finish(ctx)
    assert rec.prepared == [["a", "bad", "c"], ["d"]]
    assert [type(e).__name__ if e else None for e in errors] == [None, "ValueError", None, None]
    assert rec.delivered == ["a", "c", "d"]
    assert rec.failed == ["bad"]  # what the shard process kept for it can go


@pytest.mark.parametrize(("workers", "batch_size", "chunk", "batch"), [
    (1, None, 2, BATCH_PER_WORKER),  # a batch keeps every worker busy with several samples
    (4, None, 2, 4 * BATCH_PER_WORKER),
    (4, 64, 64, 64),  # `batchSize` is the model's chunk, and a batch holds at least one
    (4, 3, 3, 4 * BATCH_PER_WORKER),
])
def test_batch_and_chunk_sizes(tmp_path: Path, workers: int, batch_size: int | None, chunk: int, batch: int) -> None:
    rec = Chunked(tmp_path)
    stage = rec.run()
    ctx = context(workers, batch_size)
    assert stage.samples_per_batch(ctx) == max(chunk, BATCH_PER_WORKER)  # before setup: no pool yet
    stage.pool = CpuPool(workers)  # what setup makes, without starting processes
    assert (stage.chunk_size(ctx), stage.samples_per_batch(ctx)) == (chunk, batch)


def test_pool_submit_in_process_is_done_on_return_with_the_exception_as_result(tmp_path: Path) -> None:
    pool = CpuPool(1)
    done = pool.submit(mark_done, {"id": "x", "dir": str(tmp_path)})
    failed = pool.submit(mark_done, {"id": "bad", "dir": str(tmp_path)})
    assert isinstance(done, Future) and done.done() and failed.done()
    assert CpuPool.result(done) == {"params": {"id": "x"}}
    assert isinstance(CpuPool.result(failed), ValueError)


class Ahead(Chunked):
    """A model stage whose `prepare` runs on its device thread, a batch ahead, inside `device_stream`
    (a model stage's: the thread's CUDA stream; here it notes which thread entered it)."""
    on_device = True

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.threads: set[str] = set()
        self.prepared_while_delivering: list[str] = []
        self.in_stream = threading.local()
        self.outside_stream: list[str] = []

    @contextmanager
    def device_stream(self) -> Iterator[None]:
        self.in_stream.on = True
        try:
            yield
        finally:
            self.in_stream.on = False

    def gather(self, sample: Any) -> dict[str, Any]:
        if sample.id == "unreadable":
            raise ValueError("this sample's input cannot be read")
        return super().gather(sample)

    def prepare(self, jobs: list[dict[str, Any]]) -> None:
        self.threads.add(threading.current_thread().name)
        if not getattr(self.in_stream, "on", False):
            self.outside_stream += [job["id"] for job in jobs]
        self.prepared.append([job["id"] for job in jobs])

    def deliver(self, sample: Any, result: dict[str, Any]) -> None:
        if result["params"]["id"] == "a2":  # the batch's last delivery waits for the next batch's GPU work
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and ["n0", "n1"] not in self.prepared:
                time.sleep(0.02)
            self.prepared_while_delivering = [i for ids in self.prepared for i in ids]
        self.delivered.append(result["params"]["id"])


def test_a_model_stage_prepares_the_next_batch_while_this_one_is_delivered(tmp_path: Path) -> None:
    rec = Ahead(tmp_path)
    stage = rec.run()
    ctx = context(workers=1, batch_size=None)
    stage.setup(ctx)
    try:
        first = [SimpleNamespace(params={}, id=i) for i in ("a0", "a1", "a2")]
        second = [SimpleNamespace(params={}, id=i) for i in ("n0", "n1", "unreadable", "n3")]
        stage.prefetch(second)  # as the runtime's loop does, before the current batch
        first_errors = stage.process_batch(first)  # type: ignore[arg-type]
        second_errors = stage.process_batch(second)  # type: ignore[arg-type]
    finally:
        stage.finish(ctx)
    assert first_errors == [None] * 3
    assert [type(e).__name__ if e else None for e in second_errors] == [None, None, "ValueError", None]
    # each chunk prepared once, on the device threads (two chunks may be prepared at once: the order of
    # `prepared` is when each finished), and delivered in the batches' order
    assert sorted(rec.prepared) == [["a0", "a1"], ["a2"], ["n0", "n1"], ["n3"]]
    assert rec.threads <= {f"genfab-device_{i}" for i in range(DEVICE_THREADS)}
    assert rec.outside_stream == []  # every chunk on its thread's stream
    assert {"a0", "a1", "a2", "n0", "n1"} <= set(rec.prepared_while_delivering)
    assert rec.delivered == ["a0", "a1", "a2", "n0", "n1", "n3"]


class BlockedReads(Ahead):
    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.release = threading.Event()

    def gather(self, sample: Any) -> dict[str, Any]:
        if sample.id == "slow":
            self.release.wait(20)
        return super().gather(sample)


def test_abort_drops_reads_not_started_so_the_device_thread_ends(tmp_path: Path) -> None:
    """A shard ending on an error: a read that has not started would never run at the interpreter's
    exit, and the device thread waiting for it would keep the process alive."""
    rec = BlockedReads(tmp_path)
    stage = rec.run()
    ctx = context(workers=1, batch_size=None)  # one reader thread: the second read waits behind the first
    stage.setup(ctx)
    try:
        samples = [SimpleNamespace(params={}, id=i) for i in ("slow", "queued")]
        stage.prefetch(samples)  # type: ignore[arg-type]
        reads = dict(stage.ahead)
        (_, outcomes), = stage.chunks(samples)  # type: ignore[arg-type]
        stage.abort()
        assert reads["queued"].cancelled() and not reads["slow"].cancelled()
        rec.release.set()
        with pytest.raises(CancelledError):
            outcomes()
        stage.device.shutdown(wait=True)  # returns: nothing is left waiting
        assert rec.prepared == []
    finally:
        rec.release.set()
        stage.pool.close()


class CountedReads(Chunked):
    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.reads: list[str] = []

    def gather(self, sample: Any) -> dict[str, Any]:
        self.reads.append(sample.id)
        return super().gather(sample)


def test_each_sample_is_read_once_in_the_runtimes_order_of_calls(tmp_path: Path) -> None:
    """The runtime prefetches batch k+1 just before it hands over batch k: batch k's reads, prefetched a
    batch earlier, are used, not dropped and read again."""
    rec = CountedReads(tmp_path)
    stage = rec.run()
    ctx = context(workers=1, batch_size=None)
    stage.setup(ctx)
    batches = [[SimpleNamespace(params={}, id=f"b{k}-{i}") for i in range(2)] for k in range(4)]
    try:
        for k, batch in enumerate(batches):
            if k + 1 < len(batches):
                stage.prefetch(batches[k + 1])
            assert stage.process_batch(batch) == [None, None]  # type: ignore[arg-type]
    finally:
        stage.finish(ctx)
    assert sorted(rec.reads) == sorted(s.id for batch in batches for s in batch)


def test_off_the_gpu_a_threads_stream_is_no_stream() -> None:
    from genfab.stages.models.placement import Placement

    placement = Placement.choose("float32")
    if placement.cuda:
        pytest.skip("this machine has a GPU")
    with placement.thread_stream() as stream:
        assert stream is None
