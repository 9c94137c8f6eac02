"""The per-sample loop and the process entry: resume, per-sample failure records, exit codes."""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, ValidationError

from genfab.api.errors import field_errors
from genfab.contract import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_RETRYABLE
from genfab.contract.names import ENV_METRICS_PORT
from genfab.inventory import SampleRef
from genfab.stages.runtime.claims import shard_feed
from genfab.stages.runtime.compile_cache import CompileCache
from genfab.stages.runtime.context import StageContext, load_context
from genfab.stages.runtime.errors import BadInput, SampleError
from genfab.stages.runtime.feed import Assignment
from genfab.stages.runtime.lifetime import die_with_parent
from genfab.stages.runtime.logs import configure
from genfab.stages.runtime.metrics import StageMetrics
from genfab.stages.runtime.pooled import PooledStage
from genfab.stages.runtime.progress import ProgressReporter
from genfab.stages.runtime.pruning import remove_gone_samples, remove_sample
from genfab.stages.runtime.simple import SampleStage
from genfab.stages.runtime.stage import WHOLE_SET_ID, Sample, Stage, whole_set_hash
from genfab.stages.runtime.stops import STOP_SIGNALS, ignore_signal, raise_interrupt
from genfab.storage import Reuse, StorageError, check_reuse
from genfab.storage.markers import Marker

log = logging.getLogger("genfab.stages")
REUSE_CHECKS = 16


def quality_of(marker: Marker | None) -> Mapping[str, Any] | None:
    """A committed sample's quality figures, as its stage kept them in its marker's params."""
    params = marker.extra.get("params") if marker is not None else None
    figures = params.get("quality") if isinstance(params, dict) else None
    return figures if isinstance(figures, dict) else None


def _reason(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, SampleError):
        return exc.reason, exc.message
    return type(exc).__name__, str(exc)


class Warm:
    """A stage as one process holds it from shard to shard: `setup` run once, before the first sample
    any shard must make (a shard whose samples are all committed loads nothing), the compile cache
    loaded then and stored after the first batch, `close` at the end."""

    def __init__(self, stage: Stage[Any]) -> None:
        self.stage = stage
        self.loaded = False
        self.cache: CompileCache | None = None
        self._saved = False
        self.pruned = False
        """`prunes_outputs` done (once per process: it lists the stage's whole output)."""

    def load(self, ctx: StageContext) -> float | None:
        """Seconds `setup` and the compile cache took now; None when they had already run."""
        if self.loaded:
            return None
        started = time.monotonic()
        self.stage.setup(ctx)
        self.loaded = True
        # models are loaded and wrapped in torch.compile, which compiles at the first sample: load
        # what the stage's earlier processes compiled before that (genfab.stages.runtime.compile_cache)
        self.cache = CompileCache.for_shard(ctx.run_storage, ctx.stage, ctx.env)
        if self.cache is not None:
            self.cache.load()
        return time.monotonic() - started

    def compiled(self) -> None:
        """The first batch ran: what it compiled is stored for the stage's processes starting later."""
        if self.cache is not None and not self._saved:
            self._saved = True
            self.cache.save()

    def close(self) -> None:
        if self.loaded:
            self.loaded = False
            self.stage.close()


def run_shard(stage: Stage[Any], ctx: StageContext, reporter: ProgressReporter, metrics: StageMetrics,
              warm: Warm | None = None) -> None:
    """Produce every sample of the shard that is not committed yet. Per-sample failures are recorded
    and skipped; `BadInput`, `FatalError`, storage and memory errors end the shard. `warm`: the stage as
    this process already holds it (a worker's earlier shards); None: a process of one shard."""
    own = warm is None
    warm = warm or Warm(stage)
    try:
        _run_shard(warm, ctx, reporter, metrics)
    finally:
        if own:
            warm.close()


def _run_shard(warm: Warm, ctx: StageContext, reporter: ProgressReporter, metrics: StageMetrics) -> None:
    stage = warm.stage
    samples = ctx.samples
    reporter.start(len(samples))
    log.info("shard starts", extra={"samples": len(samples), "of": ctx.total_samples})
    if stage.whole_set:
        run_whole_set(warm, ctx, reporter, metrics)
        return
    if stage.prunes_outputs and stage.marker_folder(ctx) and not warm.pruned:
        warm.pruned = True
        remove_gone_samples(ctx.output, stage.marker_folder(ctx), (ref.id for ref in ctx.all_samples))
    pending: list[tuple[SampleRef, Reuse]] = []
    # One marker read (and a HEAD per output) per sample: concurrent, since on S3 latency dominates.
    with ThreadPoolExecutor(REUSE_CHECKS, thread_name_prefix="genfab-reuse") as pool:
        checks = list(pool.map(lambda ref: stage.reuse(ctx, ref.id), samples))
    for ref, reuse in zip(samples, checks, strict=True):
        if reuse.committed:
            reporter.succeeded(ref.id, reused=True, figures=quality_of(reuse.previous))
            metrics.sample("reused")
            continue
        if reuse.problem:
            reporter.report.redone += 1
            log.warning("committed sample fails the reuse check; producing it again",
                        extra={"sample": ref.id, "problem": reuse.problem, "check": ctx.verify})
        pending.append((ref, reuse))
    if pending:
        load = warm.load(ctx)
        if load is not None:
            reporter.report.model_load_seconds = round(load, 3)
            metrics.model_load_seconds.set(load)
            log.info("setup done", extra={"seconds": round(load, 3), "pending": len(pending)})
    size = stage.samples_per_batch(ctx)
    # A batch's outputs are stored and its markers written in the background while the next batch
    # computes; a sample is reported done once its marker is written, in order. At most two
    # batches are in flight (their outputs are held in memory until stored).
    inflight: deque[tuple[Sample, Future[object], float]] = deque()

    def settle(keep: int) -> None:
        while inflight and (len(inflight) > keep or inflight[0][1].done()):
            sample, commit, per_sample = inflight.popleft()
            commit.result()  # a failed write ends the shard (retryable), as before
            sample.release()
            for note in sample.notes:
                reporter.note(f"{sample.id}: {note}")
            reporter.succeeded(sample.id, seconds=per_sample, produced_by=sample.produced_by,
                               figures=sample.params.get("quality"))
            metrics.sample("succeeded", per_sample)
            metrics.figures(sample.params.get("quality"))
            log.info("sample committed", extra={"sample": sample.id, "seconds": round(per_sample, 3)})
        metrics.shard_progress.set(reporter.report.done / max(1, len(samples)))

    try:
        with ThreadPoolExecutor(4, thread_name_prefix="genfab-commit") as committer:
            batches = [[Sample(ref, ctx, stage.marker_prefix(ref.id, ctx), previous=reuse.previous)
                        for ref, reuse in pending[start:start + size]] for start in range(0, len(pending), size)]
            for k, batch in enumerate(batches):
                if k + 1 < len(batches):
                    stage.prefetch(batches[k + 1])
                began, wall = time.monotonic(), time.time()
                errors = stage.process_batch(batch)
                per_sample = (time.monotonic() - began) / len(batch)
                warm.compiled()
                for sample, error in zip(batch, errors, strict=True):
                    if error is None:
                        inflight.append((sample, committer.submit(sample.commit, wall), per_sample))
                    else:
                        reason, message = _reason(error)
                        if stage.prunes_outputs and sample.previous is not None:  # an earlier config's outputs
                            remove_sample(ctx.output, sample.marker_prefix, sample.previous)
                        sample.release()
                        reporter.failed(sample.id, reason, message)
                        metrics.sample("failed", per_sample, reason)
                        log.warning("sample failed", extra={"sample": sample.id, "reason": reason, "error": message})
                settle(keep=size)
            settle(keep=0)
    except BaseException:  # its background work must not keep a failing shard's process alive
        # What committed before a stop or a failure is reported, not lost with the shard (a failed write
        # here is dropped: the error that ends the shard is already on its way).
        with contextlib.suppress(Exception):
            settle(keep=len(inflight))
        stage.abort()
        raise
    stage.finish(ctx)


def run_whole_set(warm: Warm, ctx: StageContext, reporter: ProgressReporter, metrics: StageMetrics) -> None:
    """A whole-set stage (`Stage.whole_set`): one result over every unit, reused only when the config
    and the unit list are those it was made from."""
    stage = warm.stage
    units = ctx.samples
    if len(units) != ctx.total_samples:
        raise BadInput(f"stage {ctx.stage!r} works on all its units at once and must run as one shard "
                       f"(this is shard {ctx.index + 1} of {ctx.shards})")
    digest, base = whole_set_hash(ctx.config_hash, units), whole_set_hash(ctx.base_hash, units)
    prefix = stage.marker_prefix(WHOLE_SET_ID, ctx)
    reuse = check_reuse(ctx.output, prefix, digest, ctx.verify, base)
    if reuse.committed:
        for ref in units:
            reporter.succeeded(ref.id, reused=True)
            metrics.sample("reused")
        return
    if reuse.problem:
        reporter.report.redone += len(units)
    load = warm.load(ctx)
    if load is not None:
        reporter.report.model_load_seconds = round(load, 3)
    began, wall = time.monotonic(), time.time()
    result = Sample(SampleRef(WHOLE_SET_ID), ctx, prefix, config_hash=digest, base_hash=base,
                    previous=reuse.previous)
    try:
        stage.process_set(result, units)
    except SampleError as exc:
        for ref in units:
            reporter.failed(ref.id, exc.reason, exc.message)
            metrics.sample("failed", 0.0, exc.reason)
        log.warning("whole-set stage failed", extra={"reason": exc.reason, "error": exc.message})
        stage.finish(ctx)
        return
    result.commit(wall)
    per_unit = (time.monotonic() - began) / max(1, len(units))
    for note in result.notes:
        reporter.note(note)
    for ref in units:
        reporter.succeeded(ref.id, seconds=per_unit)
        metrics.sample("succeeded", per_unit)
    log.info("whole set committed", extra={"units": len(units), "seconds": round(time.monotonic() - began, 3)})
    stage.finish(ctx)


def interrupted_exit(why: str) -> int:
    """The shell's code for the signal that stopped the shard (128 + its number: SIGTERM 143, SIGHUP 129),
    SIGINT's 130 when it cannot tell."""
    try:
        return 128 + int(signal.Signals[why])
    except KeyError:
        return EXIT_INTERRUPTED


def validated_settings(ctx: StageContext, model: type[BaseModel] | None) -> Any:
    """The stage's settings: the mounted config validated against `model` once (BadInput naming the
    field), or the config dict when the stage declares no model."""
    if model is None:
        return ctx.config
    try:
        return model.model_validate(ctx.config)
    except ValidationError as exc:
        errors = field_errors(exc)
        more = f" ({len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BadInput(f"stage config of {ctx.stage!r} does not match {model.__name__}: config.{errors[0]}{more}"
                       ) from None


def declared_settings(ctx: StageContext, stage: Stage[Any]) -> type[BaseModel] | None:
    """The settings model the stage's pipeline declares for it, when `stage` is that declaration's
    implementation (a custom stage's own code has none)."""
    from genfab.api.pipeline import pipelines

    found = pipelines().get(ctx.cfg.pipeline)
    if found is None or ctx.stage not in found.stage_names:
        return None
    decl = found.stage(ctx.stage)
    cls = type(stage)
    declared = stage.declared_as or f"{cls.__module__}:{cls.__qualname__}"
    if decl.implementation == declared:
        return decl.settings
    # a SampleStage handed over as an object (`main(STAGE.stage())`): the declaration's object itself
    module, _, attr = (decl.implementation or "").partition(":")
    spec = getattr(stage, "spec", None)
    return decl.settings if spec is not None and getattr(sys.modules.get(module), attr, None) is spec else None


def missing_package(exc: ModuleNotFoundError, pipeline: str, stage: str, family: str) -> str:
    """One line for an import this environment cannot satisfy: not retried (a retry finds the same
    environment), naming the `genfab[...]` extra (or image) that has it."""
    from genfab.api.families import FAMILIES
    from genfab.api.pipeline import pipelines

    found = pipelines().get(pipeline)
    decl = found.stage(stage) if found is not None and stage in found.stage_names else None
    image = decl.family if decl is not None else family
    extra = (decl.extra or decl.family) if decl is not None else family
    fix = (f"install genfab[{extra}] (pip install 'genfab[{extra}]'), or run it in the {image} image"
           if image in FAMILIES else "install it in the stage's image")
    return f"missing Python package {exc.name or str(exc)!r} for stage {stage} of pipeline {pipeline}: {fix}"


def main(stage: Stage[Any], env: Mapping[str, str] | None = None, settings: type[BaseModel] | None = None) -> int:
    """Run `stage` per the stage contract and return the process exit code: the one shard the
    environment names, or, in a warm worker, shard after shard from its feed with the models loaded
    once (genfab.stages.runtime.feed); a worker stops at the first shard that does not succeed, whose
    code it returns. `settings` is the model the stage's config is validated against before `setup`
    (default: the one its pipeline declares for it)."""
    die_with_parent(env)  # a killed `genfab run` leaves no shard process behind
    for sig in STOP_SIGNALS:  # preemption, `genfab run` stopping, Ctrl-C, a closed terminal: stop between
        signal.signal(sig, raise_interrupt)  # writes, report, exit retryable
    logger = configure({"stage": stage.name})
    try:
        ctx = load_context(env)
        feed = shard_feed(ctx)
    except BadInput as exc:
        logger.error("bad stage contract: %s", exc)
        return EXIT_BAD_INPUT
    metrics = StageMetrics(ctx.stage)
    ctx.metrics = metrics
    port = ctx.env.get(ENV_METRICS_PORT)
    if port:
        metrics.serve(int(port))
    warm = Warm(stage)
    code = EXIT_OK
    try:
        for assignment in feed:
            ended = run_assigned(warm, ctx, assignment, settings)
            feed.done(assignment, ended)
            if not feed.continues_after(ended):  # what the process's exit says
                code = ended
                break
    except KeyboardInterrupt as exc:  # stopped between shards: nothing of a shard is lost
        code = interrupted_exit(str(exc))
    except BadInput as exc:  # the feed's line
        log.error("%s", exc)
        code = EXIT_BAD_INPUT
    except StorageError as exc:  # the cursor or this worker's record: the Pod's next try reads them again
        log.error("shards not taken: %s", exc)
        code = EXIT_RETRYABLE
    finally:
        feed.close()
        try:
            warm.close()
        except Exception as exc:  # a pool that does not stop must not hide the shard's outcome
            log.warning("stage close failed: %s: %s", type(exc).__name__, exc)
        if "workdir" in ctx.__dict__:  # only created if the stage asked for scratch space
            shutil.rmtree(ctx.workdir, ignore_errors=True)
    for sig in STOP_SIGNALS:  # done and reported: a stop now must not break the interpreter's exit (a
        signal.signal(sig, ignore_signal)  # KeyboardInterrupt in the pool's exit hook, with its traceback)
    return code


def run_assigned(warm: Warm, ctx: StageContext, assignment: Assignment, settings: type[BaseModel] | None) -> int:
    """One shard: run, report (storage, termination message) and return its exit code."""
    stage = warm.stage
    ctx.take_shard(assignment.index, assignment.env())
    configure({"stage": ctx.stage, "shard": ctx.index, "shards": ctx.shards, "hash": ctx.config_hash[:10]})
    reporter = ProgressReporter(ctx)
    ctx.heartbeat = reporter.alive
    ctx.note = reporter.note
    assert ctx.metrics is not None
    code, state, message = EXIT_OK, "succeeded", ""
    try:
        if not warm.loaded:
            stage.settings = validated_settings(ctx, settings or declared_settings(ctx, stage))
        run_shard(stage, ctx, reporter, ctx.metrics, warm)
    except BadInput as exc:
        code, state, message = EXIT_BAD_INPUT, "failed", f"bad input: {exc}"
    except ModuleNotFoundError as exc:
        code, state, message = EXIT_BAD_INPUT, "failed", missing_package(exc, ctx.cfg.pipeline, ctx.stage,
                                                                         ctx.cfg.family)
    except KeyboardInterrupt as exc:
        code, state, message = interrupted_exit(str(exc)), "failed", f"interrupted ({exc or 'SIGINT'})"
    except Exception as exc:  # FatalError, StorageError, MemoryError, a crash in stage code: retryable
        code, state, message = EXIT_RETRYABLE, "failed", f"{type(exc).__name__}: {exc}"
        log.exception("shard failed")
    finally:
        if "writer" in ctx.__dict__:  # outputs already handed over are stored before the shard's report
            ctx.writer.shutdown(wait=True)
            del ctx.__dict__["writer"]  # the next shard's writes get a pool of their own
    if message:
        log.error(message, extra={"exit": code})
    try:
        reporter.finish(state, message)
    except StorageError as exc:
        log.error("final progress report not written: %s", exc)
        code = code or EXIT_RETRYABLE
    else:
        try:
            stage.after_report(ctx, reporter.report)
        except Exception as exc:  # a summary file must not turn a finished shard into a failed one
            log.warning("after-report step failed: %s: %s", type(exc).__name__, exc)
    r = reporter.report
    log.info("shard done", extra={"state": state, "succeeded": len(r.succeeded), "reused": r.reused,
                                  "failed": len(r.failed), "exit": code})
    return code


def run(stage: Stage[Any] | SampleStage[Any, Any] | PooledStage[Any, Any]) -> None:
    """`if __name__ == "__main__": run(MY_SAMPLE_STAGE)` (or `run(MyStage())`) for custom stages."""
    sys.exit(main(stage.stage() if isinstance(stage, SampleStage | PooledStage) else stage))
