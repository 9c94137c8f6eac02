"""`genfab plan --estimate`: the plan's cost table (genfab.planner.estimate) for people."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from genfab.planner.estimate import Estimate, duration


def _hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.2f}"


def estimate_table(est: Estimate) -> Table:
    parallelism = "all shards at once" if est.parallelism is None else f"parallelism {est.parallelism}"
    table = Table(title=f"estimate on {est.gpu} ({parallelism})", title_justify="left")
    for column, justify in (("stage", "left"), ("samples", "right"), ("GPUs", "right"),
                            ("s / sample", "right"), ("GPU-h", "right"), ("wall", "right"),
                            ("lab's way GPU-h", "right"), ("measured", "left")):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for s in est.stages:
        measured = escape(s.source) if s.state == "estimated" and s.source else s.state
        table.add_row(s.stage, "?" if s.samples is None else str(s.samples), str(s.gpus),
                      "-" if s.sample_seconds is None else f"{s.sample_seconds:.2f}", _hours(s.gpu_seconds),
                      duration(s.wall_seconds), _hours(s.baseline_gpu_seconds), measured)
    return table


def estimate_lines(est: Estimate) -> list[str]:
    """The totals and what they leave out, one line each."""
    lines = [f"total: {est.gpu_hours:.2f} {est.gpu.upper()} GPU-hours, wall {duration(est.wall_seconds)} "
             "(stages start when their upstream stages finish, as the operator runs them)"]
    missing = [s for s in est.stages if s.state in ("not calibrated", "samples unknown")]
    if missing:
        lines.append("not in the totals: " + "; ".join(f"{s.stage} ({s.note})" for s in missing))
    if any(s.state == "cpu" for s in est.stages):
        lines.append("CPU stages cost no GPU time; their wall time is not estimated")
    lines.append("from the calibration table (genfab.planner.calibration): each row's command re-measures it "
                 "(`genfab plan --estimate --json` lists them)")
    return lines
