"""The per-sample loop and the process entry: resume, per-sample failure records, exit codes."""

from __future__ import annotations

import logging
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import FrameType
from typing import Any

from pydantic import BaseModel, ValidationError

from genfab.api.errors import field_errors
from genfab.contract import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_RETRYABLE
from genfab.contract.names import ENV_METRICS_PORT
from genfab.inventory import SampleRef
from genfab.stages.runtime.compile_cache import CompileCache
from genfab.stages.runtime.context import StageContext, load_context
from genfab.stages.runtime.errors import BadInput, SampleError
from genfab.stages.runtime.lifetime import die_with_parent
from genfab.stages.runtime.logs import configure
from genfab.stages.runtime.metrics import StageMetrics
from genfab.stages.runtime.progress import ProgressReporter
from genfab.stages.runtime.pruning import remove_gone_samples, remove_sample
from genfab.stages.runtime.stage import WHOLE_SET_ID, Sample, Stage, whole_set_hash
from genfab.storage import Reuse, StorageError, check_reuse
from genfab.storage.markers import Marker

log = logging.getLogger("genfab.stages")
REUSE_CHECKS = 16
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def quality_of(marker: Marker | None) -> Mapping[str, Any] | None:
    """A committed sample's quality figures, as its stage kept them in its marker's params."""
    params = marker.extra.get("params") if marker is not None else None
    figures = params.get("quality") if isinstance(params, dict) else None
    return figures if isinstance(figures, dict) else None


def _reason(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, SampleError):
        return exc.reason, exc.message
    return type(exc).__name__, str(exc)


def run_shard(stage: Stage[Any], ctx: StageContext, reporter: ProgressReporter, metrics: StageMetrics) -> None:
    """Produce every sample of the shard that is not committed yet. Per-sample failures are recorded
    and skipped; `BadInput`, `FatalError`, storage and memory errors end the shard."""
    samples = ctx.samples
    reporter.start(len(samples))
    log.info("shard starts", extra={"samples": len(samples), "of": ctx.total_samples})
    if stage.whole_set:
        run_whole_set(stage, ctx, reporter, metrics)
        return
    if stage.prunes_outputs and stage.marker_folder(ctx):
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
    cache: CompileCache | None = None
    if pending:
        started = time.monotonic()
        stage.setup(ctx)
        # models are loaded and wrapped in torch.compile, which compiles at the first sample: load
        # what the stage's earlier Pods compiled before that (genfab.stages.runtime.compile_cache)
        cache = CompileCache.for_shard(ctx.run_storage, ctx.stage, ctx.env)
        if cache is not None:
            cache.load()
        load = time.monotonic() - started
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
                if k == 0 and cache is not None:  # compiled now: the stage's Pods starting later load it
                    cache.save()
                for sample, error in zip(batch, errors, strict=True):
                    if error is None:
                        inflight.append((sample, committer.submit(sample.commit, wall), per_sample))
                    else:
                        reason, message = _reason(error)
                        if stage.prunes_outputs and sample.previous is not None:  # an earlier config's outputs
                            remove_sample(ctx.output, sample.marker_prefix, sample.previous)
                        reporter.failed(sample.id, reason, message)
                        metrics.sample("failed", per_sample, reason)
                        log.warning("sample failed", extra={"sample": sample.id, "reason": reason, "error": message})
                settle(keep=size)
            settle(keep=0)
    except BaseException:  # its background work must not keep a failing shard's process alive
        stage.abort()
        raise
    stage.finish(ctx)


def run_whole_set(stage: Stage[Any], ctx: StageContext, reporter: ProgressReporter, metrics: StageMetrics) -> None:
    """A whole-set stage (`Stage.whole_set`): one result over every unit, reused only when the config
    and the unit list are those it was made from."""
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
    started = time.monotonic()
    stage.setup(ctx)
    reporter.report.model_load_seconds = round(time.monotonic() - started, 3)
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


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    for sig in STOP_SIGNALS:  # one stop: a second signal must not cut the final report short
        # A Python handler that does nothing, not SIG_IGN: a signal already caught at the C level (Ctrl-C's
        # SIGINT, then `genfab run`'s SIGTERM) would find SIG_IGN and raise "Signal 15 ignored due to race
        # condition" into the shard's cleanup.
        signal.signal(sig, _ignore)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A stop signal after the first: the shard is already stopping."""


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
    return decl.settings if decl.implementation == f"{cls.__module__}:{cls.__qualname__}" else None


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
    """Run one shard of `stage` per the stage contract and return the process exit code. `settings`
    is the model the stage's config is validated against before `setup` (default: the one its
    pipeline declares for it)."""
    die_with_parent(env)  # a killed `genfab run` leaves no shard process behind
    for sig in STOP_SIGNALS:  # preemption, `genfab run` stopping, Ctrl-C, a closed terminal: stop between
        signal.signal(sig, _raise_interrupt)  # writes, report, exit retryable
    logger = configure({"stage": stage.name})
    try:
        ctx = load_context(env)
    except BadInput as exc:
        logger.error("bad stage contract: %s", exc)
        return EXIT_BAD_INPUT
    configure({"stage": ctx.stage, "shard": ctx.index, "shards": ctx.shards, "hash": ctx.config_hash[:10]})
    metrics = StageMetrics(ctx.stage)
    ctx.metrics = metrics
    port = ctx.env.get(ENV_METRICS_PORT)
    if port:
        metrics.serve(int(port))
    reporter = ProgressReporter(ctx)
    ctx.heartbeat = reporter.alive
    ctx.note = reporter.note
    code, state, message = EXIT_OK, "succeeded", ""
    try:
        stage.settings = validated_settings(ctx, settings or declared_settings(ctx, stage))
        run_shard(stage, ctx, reporter, metrics)
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
        if "writer" in ctx.__dict__:  # outputs already handed over are stored before the process ends
            ctx.writer.shutdown(wait=True)
        if "workdir" in ctx.__dict__:  # only created if the stage asked for scratch space
            shutil.rmtree(ctx.workdir, ignore_errors=True)
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
    for sig in STOP_SIGNALS:  # done and reported: a stop now must not break the interpreter's exit (a
        signal.signal(sig, _ignore)  # KeyboardInterrupt in the pool's exit hook, with its traceback)
    return code


def run(stage: Stage[Any]) -> None:
    """`if __name__ == "__main__": run(MyStage())` for custom stages."""
    sys.exit(main(stage))
