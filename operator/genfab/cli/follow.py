"""`genfab status` and `genfab logs`: look at a run from another terminal, as `argo get` and `argo logs`
do for a workflow. Both read what a run keeps in its output (`_genfab/status.json`, `summary.json`)
wherever it is (a folder, `file://`, `s3://` with the environment's credentials); the shard logs
are the local run's (`{output}/_genfab/logs/` for a `file://` output, else
`genfab-runs/.logs/<name>/`). The formatting is pure (`status_lines`, `log_line`)."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from genfab.api.quality import FIGURES
from genfab.api.status import SETTLED_PHASES, TrainingStatus
from genfab.api.status_document import StatusDocument
from genfab.api.summary import RunSummary
from genfab.cli.terminal import echo, fail, malformed_is_one_line
from genfab.contract import STATUS_KEY, SUMMARY_KEY
from genfab.contract.documents import parse_document
from genfab.contract.files import open_regular
from genfab.contract.text import shown
from genfab.local.failures import yield_line
from genfab.local.lease import gone_holder, gone_message
from genfab.planner.estimate import duration
from genfab.storage import S3Settings, Storage, StorageError, open_confined
from genfab.storage.base import StorageTooLarge

MAX_DOC_BYTES = 16 << 20
MAX_LOG_READ = 32 << 20
"""Bytes of one shard log read at a time (`genfab logs` prints the first part of a larger one)."""
RESOURCE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
"""A Kubernetes resource name (RFC 1123 subdomain): no `/`, no `..` at either end."""
"""The most of a status or summary document read (a run's own files, but still bounded)."""
QUIET_KEYS = ("ts", "level", "msg", "stage", "shard", "shards", "hash")
"""A log record's keys shown in its head, not repeated as `key=value`."""


def output_uri(output: str) -> str:
    """A URI as given, or a local folder as `file://` (absolute)."""
    if "://" in output:
        return output.rstrip("/")
    return Path(output).resolve().as_uri()


def log_dir(uri: str, name: str) -> Path:
    """Where `genfab run` keeps a run's shard logs (one folder per stage, `shard-NNNNN.log`): under a
    local output; for object storage under `genfab-runs/.logs/<name>` here, the name a Kubernetes name
    (a remote status cannot point this machine's reads elsewhere: ValueError)."""
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://")) / "_genfab" / "logs"
    if not RESOURCE_NAME.fullmatch(name):
        raise ValueError(f"the run's metadata.name {shown(name[:80])!r} is not a Kubernetes name: no local log "
                         "folder is derived from it")
    return Path("genfab-runs") / ".logs" / name


def _read_json(store: Storage, key: str) -> dict[str, Any] | None:
    if not store.exists(key):
        return None
    return parse_document(store.read_at_most(key, MAX_DOC_BYTES, key), store.child(key))


def status_lines(doc: StatusDocument, summary: RunSummary | None, uri: str, gone: str = "") -> list[str]:
    """What `genfab status` prints: the run, each stage, what waits or failed and where the data is;
    `gone`: the local run that wrote it stopped without an end (its phase is then not shown as live)."""
    st = doc.status
    lines = [f"{doc.kind}/{doc.metadata.name}: " + (gone or (
        st.phase + (f"  (progress {st.progress or '?'}, stage {st.current_stage})" if st.current_stage else "")))]
    rows = [("stage", "phase", "done", "failed", "GPU-s", "ETA", "note")]
    for s in st.stages:
        made = s.produced_by or {}
        note = s.message or (", ".join(f"{k}: {v}" for k, v in made.items()) if made else "")
        rows.append((s.name, s.phase, f"{s.samples.succeeded}/{s.samples.total}", str(s.samples.failed),
                     "-" if s.gpu_seconds is None else f"{s.gpu_seconds:.0f}", duration(s.eta_seconds),
                     f"{s.reason}: {note}" if s.reason else note))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines += [("  " + "  ".join(c.ljust(w) for c, w in zip(r[:6], widths, strict=True)) + "  " + r[6]).rstrip()
              for r in rows]
    for c in st.conditions:
        if c.status == "True" and c.type not in ("Succeeded", "Running", "Accepted") and c.message:
            lines.append(f"{c.type}: {c.message}")
    lines += training_lines(st.training)
    lines.append(f"data: {st.outputs.get('root') or uri}")
    if summary is not None:
        said = yield_line(summary)
        if said:
            lines.append(said)
        if summary.dropped:
            lines.append(f"dropped: {summary.dropped} sample(s) in {summary.dropped_samples_csv}")
        for stage in summary.stages:
            for reason, d in stage.dropped.items():
                lines.append(f"  {stage.name}: {d.count} {reason} (e.g. {', '.join(d.examples)})")
        lines += quality_lines(summary)
        lines += cost_lines(summary)
        lines.append(f"summary: {summary.summary_uri or uri + '/' + SUMMARY_KEY}")
        if summary.report_uri:  # written by `genfab run`; for the operator's runs by `genfab report`
            lines.append(f"report: {summary.report_uri} (`{summary.report_command}` writes it again)")
    elif st.phase not in SETTLED_PHASES:
        lines.append(f"logs: genfab logs {uri}")
    return lines


def training_lines(training: TrainingStatus | None) -> list[str]:
    """A TuningRun's step and its latest and best checkpoints (by held-out PSNR)."""
    if training is None:
        return []
    lines = [f"training: step {training.step}/{training.max_steps}, loss {_g(training.loss)}, "
             f"{_g(training.images_per_second)} images/s"
             + (f", trainer {training.trainer}" if training.trainer else "")]
    if training.latest_checkpoint:
        lines.append(f"  latest checkpoint: {training.latest_checkpoint}")
    if training.best_checkpoint:
        lines.append(f"  best checkpoint:   {training.best_checkpoint} (step {training.best_step}, held-out "
                     f"PSNR {_g(training.best_psnr)} dB)")
    return lines


def cost_lines(summary: RunSummary) -> list[str]:
    """The run's GPU-hours, per stage with its rate per sample and what its dropped samples cost."""
    if summary.gpu_hours is None:
        return []
    parts = [f"{r.name} {_g(r.gpu_hours)}" + (f" ({_g(r.gpu_seconds_per_sample)} GPU-s/sample"
                                               + (f", dropped {_g(r.dropped_gpu_hours)}" if r.dropped_gpu_hours else "")
                                               + ")" if r.gpu_seconds_per_sample is not None else "")
             for r in summary.stages if r.gpu_hours is not None]
    return [f"cost: {_g(summary.gpu_hours)} GPU-hours: " + "; ".join(parts)]


def quality_lines(summary: RunSummary) -> list[str]:
    """One line per quality figure of each stage: its samples, least, p5 / p50 / p95 and greatest."""
    lines = []
    for stage in summary.stages:
        figures = stage.figures or {}
        if figures:
            lines.append(f"quality ({stage.name}, {next(iter(figures.values())).get('count')} samples; "
                         "min  p5 / p50 / p95 (read off a histogram: about)  max):")
        for name, f in figures.items():
            if name not in FIGURES:  # the summary is the output's to write: only genfab's own names are printed
                continue
            lines.append(f"  {name:<18} {_g(f.get('min'))}  {_g(f.get('p5'))} / {_g(f.get('p50'))} / "
                         f"{_g(f.get('p95'))}  {_g(f.get('max'))}")
    return lines


def _g(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "-"


def log_line(text: str) -> str:
    """One shard log line made readable: `HH:MM:SS stage[shard] level message key=value ...`; lines that
    are not a JSON record (attempt markers, a traceback's lines) as they are."""
    try:
        rec = json.loads(text)
    except (ValueError, RecursionError):  # not a record (or one nested past the parser): the line itself
        return text.rstrip("\n")
    if not isinstance(rec, dict) or "msg" not in rec:
        return text.rstrip("\n")
    ts = str(rec.get("ts", ""))
    try:
        clock = datetime.fromisoformat(ts.replace("Z", "+00:00")).strftime("%H:%M:%S")
    except ValueError:
        clock = ts
    where = f"{rec.get('stage', '?')}[{rec.get('shard', '?')}]"
    rest = " ".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in rec.items()
                    if k not in QUIET_KEYS)
    return f"{clock} {where} {str(rec.get('level', '')).ljust(7)} {rec['msg']}" + (f"  {rest}" if rest else "")


def _open(command: str, output: str) -> tuple[str, Storage]:
    uri = output_uri(output)
    try:
        return uri, open_confined(uri, S3Settings.from_env(dict(os.environ)))
    except (StorageError, ValueError) as exc:
        fail(command, f"{output}: {exc}")


def _status_doc(command: str, uri: str, store: Storage) -> tuple[StatusDocument, RunSummary | None]:
    try:
        raw_status = _read_json(store, STATUS_KEY)
        doc = StatusDocument.model_validate(raw_status) if raw_status is not None else None
        raw = _read_json(store, SUMMARY_KEY)
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(command, f"{store.child(STATUS_KEY)}: {'.'.join(str(p) for p in first.get('loc', ()))}: "
                      f"{first.get('msg', 'not what genfab writes')}")
    except (StorageError, StorageTooLarge, ValueError) as exc:
        fail(command, f"{uri}: {exc}")
    if doc is None:
        fail(command, f"{uri}: no genfab run there (no {STATUS_KEY}); give the output a run wrote to "
                       "(the spec's output, or what `genfab run --out` named)")
    try:
        summary = RunSummary.model_validate(raw) if raw is not None else None
    except ValidationError:  # not the summary genfab writes: the status alone is shown
        summary = None
    return doc, summary


@click.command("status")
@click.argument("output")
@click.option("--watch", is_flag=True, help="Print it again every --interval seconds until the run ends.")
@click.option("--interval", type=click.FloatRange(min=0.5), default=2.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the status document as it is.")
@malformed_is_one_line("status")
def status_cmd(output: str, watch: bool, interval: float, as_json: bool) -> None:
    """A run's status from its OUTPUT (a folder, file:// or s3:// URI; credentials from the environment):
    phase, each stage's counts and note, what waits for a person or failed and why, where the data is
    and, once it ended, the drops by reason. Exit 2 when OUTPUT holds no run."""
    uri, store = _open("status", output)
    while True:
        doc, summary = _status_doc("status", uri, store)
        phase = doc.status.phase
        holder = (gone_holder(store, time.time()) if doc.executor == "local" and phase not in SETTLED_PHASES
                  else None)
        if as_json:
            echo(json.dumps(doc.document(), indent=2))
        else:
            echo("\n".join(status_lines(doc, summary, uri, gone_message(holder) if holder else "")))
        if not watch or phase in SETTLED_PHASES or holder is not None:
            return
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return
        echo("")


def _log_files(folder: Path, stage: str | None, shard: int | None) -> list[Path]:
    """The shard logs under `folder`: linked folders are not entered (the files themselves are opened
    without following a link: `_read_log`)."""
    if not folder.is_dir() or folder.is_symlink():
        return []
    stages = [folder / stage] if stage else sorted(p for p in folder.iterdir() if p.is_dir())
    pattern = f"shard-{shard:05d}.log" if shard is not None else "shard-*.log"
    return [f for s in stages if s.is_dir() and not s.is_symlink() for f in sorted(s.glob(pattern))]


def _read_log(path: Path, offset: int) -> bytes | None:
    """At most MAX_LOG_READ bytes of a shard log from `offset`: a regular file, not through a link
    (None, said in one line, for a FIFO, a device, a link or what cannot be read)."""
    try:
        fd = open_regular(path, os.O_NOFOLLOW)
    except OSError as exc:
        echo(f"genfab logs: {path}: skipped ({exc.strerror or 'a link, not a log file'})", err=True)
        return None
    with os.fdopen(fd, "rb") as fh:
        fh.seek(offset)
        return fh.read(MAX_LOG_READ)


def _phase(store: Storage) -> str | None:
    raw = _read_json(store, STATUS_KEY)
    try:
        return StatusDocument.model_validate(raw).status.phase if raw is not None else None
    except ValidationError:
        return None


@click.command("logs")
@click.argument("output")
@click.argument("stage", required=False)
@click.option("--shard", type=click.IntRange(min=0), default=None, help="Only this shard's log.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the run ends.")
@malformed_is_one_line("logs")
def logs_cmd(output: str, stage: str | None, shard: int | None, follow: bool) -> None:
    """The shard logs of a local run whose output is OUTPUT, as readable lines (time, stage[shard], level,
    message, details), stage by stage in plan order or only STAGE (and --shard N); -f follows them until
    the run ends. Exit 2 when there are none."""
    uri, store = _open("logs", output)
    doc, _ = _status_doc("logs", uri, store)
    try:
        folder = log_dir(uri, doc.metadata.name)
    except ValueError as exc:
        fail("logs", str(exc))
    known = [s.name for s in doc.status.stages]
    if stage is not None and stage not in known:
        fail("logs", f"no stage {stage!r} in this run (stages: {', '.join(str(k) for k in known)})")
    order = {n: i for i, n in enumerate(known)}
    files = sorted(_log_files(folder, stage, shard), key=lambda p: (order.get(p.parent.name, len(order)), p.name))
    if not files and not follow:
        fail("logs", f"no shard logs under {folder}" + (f" for stage {stage}" if stage else "")
              + " (they are kept by the machine that ran `genfab run`)")
    offsets: dict[Path, int] = {}
    skipped: set[Path] = set()
    while True:
        ended = not follow or _phase(store) in SETTLED_PHASES
        for path in _log_files(folder, stage, shard) if follow else files:
            if path in skipped:
                continue
            chunk = _read_log(path, offsets.get(path, 0))
            if chunk is None:
                skipped.add(path)
                continue
            if len(chunk) == MAX_LOG_READ and not follow:  # printed up to the bound, said once
                chunk = chunk[: chunk.rfind(b"\n") + 1]
                echo(f"genfab logs: {path} is larger than {MAX_LOG_READ >> 20} MiB: its first lines follow, the "
                     "rest is in the file", err=True)
            complete = chunk if ended else chunk[: chunk.rfind(b"\n") + 1]  # a line being written waits
            offsets[path] = offsets.get(path, 0) + len(complete)
            for raw in complete.decode("utf-8", "replace").splitlines():
                echo(log_line(raw))
        if ended:  # what was written before the run ended has been printed
            return
        try:
            time.sleep(1.0)
        except KeyboardInterrupt:
            return
