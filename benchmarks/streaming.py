"""Streaming between stages on the emulated cluster: a three-stage DatasetJob whose stages take known
times, run by the real operator (`python -m genfab.operator`, a subprocess) once with streaming on and once
with it off (`GENFAB_STREAMING=false`, the chart's `stages.streaming`: every stage waits for the one
before, as genfab did before), side by side in this process on this machine.

The job: relighting's first three stages (segment -> albedo -> degrade, each streaming from the one before)
over `--samples` input files, `--shard-size` samples a shard, `--parallelism` workers a stage. The fake
kubelet runs each worker Pod with the real runtime's `ClaimFeed` (the cursor, the operator's input marks)
and each shard of stage k for `--seconds[k]`. A stage's own time is what it takes alone:
ceil(shards / parallelism) rounds of its shard time.

Reported per mode:
- wall: the resource's apply to Succeeded; stages: its first stage's Job (created once the input is
  listed, the same in both modes) to Succeeded, and its ratio to the slowest stage's own time (the
  issue's target for streaming: at most 1.2) and to the sum of the stages' own times (a barrier's cost);
- first sample: the apply to the first sample the last stage committed;
- peak in flight: the most samples committed by the first stage and not yet by the last (what stays
  stored between stages waiting for the rest of the pipeline), from the status every 0.2 s.

    python benchmarks/streaming.py                         # 10,000 samples, 100 shards, 5 workers a stage
    python benchmarks/streaming.py --write                 # a new section in results/streaming.md
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / p) for p in ("operator", "stages", "")]

from tests.emulator.harness import Emulator, OperatorProcess  # noqa: E402
from tests.emulator.kubelet import Behaviour  # noqa: E402

STAGES = ("segment", "albedo", "degrade")
PROGRESS_SECONDS = 2.0
"""The operator's `progressSeconds` here: how often it reads the workers' records (and so marks input)."""


@dataclass
class Result:
    mode: str
    wall: float
    pipeline: float
    """From the first stage's Job to the end: the wall less the listing before any stage runs (the same in
    both modes)."""
    first_sample: float
    peak_in_flight: int
    samples: int


def job(tmp: Path, samples: int, shard_size: int, parallelism: int, name: str) -> dict[str, Any]:
    inputs = tmp / "in"
    if not inputs.exists():
        inputs.mkdir()
        for i in range(samples):
            (inputs / f"p{i:07d}.png").write_bytes(b"png")
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob",
            "metadata": {"name": name, "namespace": f"lab-{name}"},
            "spec": {"type": "relighting", "output": f"file://{tmp}/out-{name}", "shardSize": shard_size,
                     "parallelism": parallelism, "onlyStages": list(STAGES),
                     "relighting": {"input": {"uri": f"file://{inputs}"}, "segmentation": {"backends": ["classical"]},
                                    "degradation": {"softShading": {"normals": "classical"}}}}}


def run(tmp: Path, streaming: bool, samples: int, shard_size: int, parallelism: int,
        seconds: dict[str, float]) -> Result:
    name = "streaming" if streaming else "barrier"
    doc = job(tmp, samples, shard_size, parallelism, name)
    emu = Emulator(tick=0.05).start()
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=seconds[stage])
    workdir = tmp / f"op-{name}"
    workdir.mkdir()
    op = OperatorProcess(emu, workdir, GENFAB_PROGRESS_SECONDS=str(PROGRESS_SECONDS),
                         GENFAB_STREAMING=str(streaming).lower()).start()
    first_job: list[float] = []

    def record(type_: str, res: tuple[str, str, str], obj: dict[str, Any]) -> None:
        if type_ == "ADDED" and res[2] == "jobs" and (obj["metadata"].get("labels") or {}).get("genfab.dev/stage") \
                and not first_job and "genfab.dev/task" not in (obj["metadata"].get("labels") or {}):
            first_job.append(time.monotonic())
    emu.cluster.hooks.append(record)
    try:
        emu.wait("operator up", op.healthy, timeout=60, interval=0.2)
        start = time.monotonic()
        emu.apply(doc)
        first, peak = math.inf, 0

        def watch(made: dict[str, int]) -> None:
            nonlocal first, peak
            if made.get(STAGES[-1], 0) and first == math.inf:
                first = time.monotonic() - start
            peak = max(peak, made.get(STAGES[0], 0) - made.get(STAGES[-1], 0))
        made = until_succeeded(emu, doc, start, watch)
        wall = time.monotonic() - start
        return Result(name, wall, start + wall - first_job[0], first, peak, made[STAGES[-1]])
    finally:
        op.stop()
        emu.stop()


def until_succeeded(emu: Emulator, doc: dict[str, Any], start: float,
                    watch: Callable[[dict[str, int]], None] = lambda made: None) -> dict[str, int]:
    """Each stage's samples made once the resource Succeeded (`watch` sees them every 0.2 s meanwhile);
    exits naming the phase it ended in otherwise, or after 30 minutes."""
    name, namespace = doc["metadata"]["name"], doc["metadata"]["namespace"]
    while True:
        status = emu.status("DatasetJob", name, namespace) or {}
        made = {s["name"]: s["samples"]["succeeded"] for s in status.get("stages", [])}
        watch(made)
        if status.get("phase") in ("Succeeded", "PartiallySucceeded", "Failed"):
            break
        if time.monotonic() - start > 1800:
            raise SystemExit(f"{name}: not done after 30 minutes: {status}")
        time.sleep(0.2)
    if status["phase"] != "Succeeded":
        raise SystemExit(f"{name}: {status['phase']}: {status}")
    return made


def append_result(title: str, script: str, text: str) -> None:
    """A section of results/streaming.md: the title, the machine, the command and `text`."""
    machine = f"{platform.node()} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    section = (f"\n## {title}\n\nMeasured {time.strftime('%Y-%m-%d')} on {machine}, Python "
               f"{platform.python_version()}: `python benchmarks/{script} {' '.join(sys.argv[1:])}`\n\n{text}\n")
    path = ROOT / "benchmarks/results/streaming.md"
    if not path.exists():
        path.write_text("# Streaming between stages (emulated cluster)\n\nWritten by benchmarks/streaming.py: "
                        "see its docstring for what each column measures.\n")
    with path.open("a") as f:
        f.write(section)


def table(results: list[Result], own: dict[str, float]) -> str:
    slowest, total = max(own.values()), sum(own.values())
    lines = ["| mode | wall s (apply to end) | stages s (first Job to end) | stages / slowest stage's own time | "
             "stages / sum of own times | first sample s | peak in flight (samples) | samples |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r.mode} | {r.wall:.1f} | {r.pipeline:.1f} | {r.pipeline / slowest:.2f}x | "
                     f"{r.pipeline / total:.2f}x | {r.first_sample:.1f} | {r.peak_in_flight:,} | {r.samples:,} |")
    by = {r.mode: r for r in results}
    if "streaming" in by and "barrier" in by:
        s, b = by["streaming"], by["barrier"]
        lines.append(f"\nstreaming / barrier: wall {s.wall / b.wall:.2f}x, stages {s.pipeline / b.pipeline:.2f}x, "
                     f"first sample {s.first_sample / b.first_sample:.2f}x, "
                     f"peak in flight {s.peak_in_flight / max(1, b.peak_in_flight):.3f}x")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--shard-size", type=int, default=100)
    ap.add_argument("--parallelism", type=int, default=5)
    ap.add_argument("--seconds", default="1.5,0.5,1.0", help="each stage's seconds a shard (segment,albedo,degrade)")
    ap.add_argument("--only", choices=("streaming", "barrier"), default=None)
    ap.add_argument("--write", action="store_true", help="append a section to benchmarks/results/streaming.md")
    args = ap.parse_args()
    seconds = dict(zip(STAGES, (float(x) for x in args.seconds.split(",")), strict=True))
    shards = math.ceil(args.samples / args.shard_size)
    rounds = math.ceil(shards / args.parallelism)
    own = {s: rounds * t for s, t in seconds.items()}
    tmp = Path(tempfile.mkdtemp(prefix="genfab-streambench-"))
    try:
        results = [run(tmp, mode == "streaming", args.samples, args.shard_size, args.parallelism, seconds)
                   for mode in ("streaming", "barrier") if args.only in (None, mode)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    head = (f"{args.samples:,} samples, {shards} shards of {args.shard_size}, {args.parallelism} workers a stage; "
            f"seconds a shard {seconds}; own times {own} (slowest {max(own.values()):.0f} s, sum "
            f"{sum(own.values()):.0f} s); operator progressSeconds {PROGRESS_SECONDS:g}")
    text = f"{head}\n\n{table(results, own)}"
    print(text)
    if args.write:
        append_result(f"{args.samples:,} samples through three stages, streaming and barriers", "streaming.py", text)


if __name__ == "__main__":
    main()
