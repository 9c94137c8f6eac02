"""Releasing streaming workers that wait for input, on the emulated cluster: the GPU time a stage's workers
hold while they have nothing to take, with the operator's release (`GENFAB_IDLE_RELEASE_SECONDS`, the
chart's `stages.idleReleaseSeconds`) and without it (a bound longer than the run: workers are only ever
raised, as genfab did before), side by side in this process on this machine, by the real operator
(`python -m genfab.operator`, a subprocess).

The job: relighting's first three stages (segment -> albedo -> degrade, each streaming from the one before)
over `--samples` inputs, `--shard-size` a shard, `--parallelism` workers a stage; each shard of stage k
takes `--seconds[k]`, except segment's shard `--straggler`, which takes `--straggler-seconds`. albedo and
degrade take their shards in order, so once they caught up with segment's committed prefix every one of
their workers waits for the straggler. The fake kubelet runs each worker Pod with the real runtime's
`ClaimFeed` and sets its Ready condition as its readiness probe would (not Ready while it waits), and its
Job controller removes Pods in Kubernetes' order when parallelism is lowered.

Reported per mode:
- waiting worker-seconds: summed over albedo's and degrade's running worker Pods, the time each was not
  Ready (waiting for input: a GPU held for nothing), from the Pods' own status changes;
- worker Pods started: each one a model load on a GPU (what a release costs when input comes again);
- wall: the resource's apply to Succeeded; samples made by the last stage.

    python benchmarks/idle_release.py                # 2,000 samples, 100 shards, a 30 s straggler
    python benchmarks/idle_release.py --write        # a new section in results/streaming.md
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / p) for p in ("operator", "stages", "")]

from benchmarks.streaming import STAGES, append_result, job, until_succeeded  # noqa: E402
from tests.emulator.harness import Emulator, OperatorProcess  # noqa: E402
from tests.emulator.kubelet import Behaviour  # noqa: E402

PROGRESS_SECONDS = 1.0
WATCHED = STAGES[1:]
"""The streaming stages: their workers wait for the stage before them."""


@dataclass
class Result:
    mode: str
    bound: float
    wall: float
    waiting: float
    started: int
    samples: int


@dataclass
class PodClock:
    """Each watched worker Pod's time not Ready while running, from its status changes."""

    waited: float = 0.0
    started: int = 0
    since: dict[str, float] = field(default_factory=dict)
    """Pod uid -> when it began waiting (monotonic), while it waits."""

    def see(self, type_: str, res: tuple[str, str, str], obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if res[2] != "pods" or (meta.get("labels") or {}).get("genfab.dev/stage") not in WATCHED:
            return
        uid, now = meta["uid"], time.monotonic()
        status = obj.get("status") or {}
        running = status.get("phase") == "Running" and type_ != "DELETED"
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        if type_ == "ADDED":
            self.started += 1
        if running and not ready:
            self.since.setdefault(uid, now)
        elif uid in self.since:
            self.waited += now - self.since.pop(uid)


def run(tmp: Path, bound: float, args: argparse.Namespace, seconds: dict[str, float]) -> Result:
    mode = "release" if bound < 3600 else "no release"
    name = "release" if bound < 3600 else "norelease"
    doc = job(tmp, args.samples, args.shard_size, args.parallelism, name)
    emu = Emulator(tick=0.05).start()

    def behaviour(stage: str, index: int, attempt: int) -> Behaviour:
        slow = stage == STAGES[0] and index == args.straggler
        return Behaviour(seconds=args.straggler_seconds if slow else seconds[stage])
    emu.kubelet.script = behaviour
    clock = PodClock()
    emu.cluster.hooks.append(clock.see)
    workdir = tmp / f"op-{name}"
    workdir.mkdir()
    op = OperatorProcess(emu, workdir, GENFAB_PROGRESS_SECONDS=str(PROGRESS_SECONDS),
                         GENFAB_IDLE_RELEASE_SECONDS=str(bound)).start()
    try:
        emu.wait("operator up", op.healthy, timeout=60, interval=0.2)
        start = time.monotonic()
        emu.apply(doc)
        made = until_succeeded(emu, doc, start)
        return Result(mode, bound, time.monotonic() - start, clock.waited, clock.started, made[STAGES[-1]])
    finally:
        op.stop()
        emu.stop()


def table(results: list[Result]) -> str:
    lines = ["| mode | release bound s | waiting worker-seconds (albedo + degrade) | worker Pods started "
             "(model loads) | wall s | samples |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        bound = f"{r.bound:g}" if r.bound < 3600 else "none"
        lines.append(f"| {r.mode} | {bound} | {r.waiting:.1f} | {r.started} | {r.wall:.1f} | {r.samples:,} |")
    by = {r.mode: r for r in results}
    if len(by) == 2:
        on, off = by["release"], by["no release"]
        lines.append(f"\nrelease / no release: waiting worker-seconds {on.waiting / max(off.waiting, 1e-9):.2f}x, "
                     f"worker Pods started {on.started / max(off.started, 1):.2f}x, wall {on.wall / off.wall:.2f}x")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=2_000)
    ap.add_argument("--shard-size", type=int, default=20)
    ap.add_argument("--parallelism", type=int, default=5)
    ap.add_argument("--seconds", default="0.5,0.1,0.1", help="each stage's seconds a shard (segment,albedo,degrade)")
    ap.add_argument("--straggler", type=int, default=20, help="segment's shard that takes --straggler-seconds")
    ap.add_argument("--straggler-seconds", type=float, default=30.0)
    ap.add_argument("--release-seconds", type=float, default=3.0, help="the release bound of the first run")
    ap.add_argument("--write", action="store_true", help="append a section to benchmarks/results/streaming.md")
    args = ap.parse_args()
    seconds = dict(zip(STAGES, (float(x) for x in args.seconds.split(",")), strict=True))
    tmp = Path(tempfile.mkdtemp(prefix="genfab-releasebench-"))
    try:
        results = [run(tmp, bound, args, seconds) for bound in (args.release_seconds, 1e9)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shards = -(-args.samples // args.shard_size)
    head = (f"{args.samples:,} samples, {shards} shards of {args.shard_size}, {args.parallelism} workers a stage; "
            f"seconds a shard {seconds}, segment's shard {args.straggler} {args.straggler_seconds:g} s; "
            f"operator progressSeconds {PROGRESS_SECONDS:g}")
    text = f"{head}\n\n{table(results)}"
    print(text)
    if args.write:
        append_result("Workers that wait for a straggler, released and kept", "idle_release.py", text)


if __name__ == "__main__":
    main()
