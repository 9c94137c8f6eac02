"""Operator scale: N resources created at once against the emulated API server.

The real operator (`python -m genfab.operator`, a subprocess) reconciles N three-stage SceneJobs
applied in one burst to `GenfabCluster` (tests/emulator) with the fake Job controller holding every
stage Pod Running. Reported per N, side by side, with the ratio to the issue's target and N=1000
against N=100 (how the cost scales):

- create -> first Job latency p50/p95 (resource ADDED -> its first Job ADDED, emulator clock);
- time until all N resources are Running;
- operator peak RSS (psutil, sampled every 50 ms, operator process tree);
- API requests per resource (every request the operator sent, watches included), by kind;
- reconciles per resource and the CPU seconds of the operator and of the emulator (this process).

Each stage Pod's start-up work (listing its samples, writing its first shard report: what the stage
container does on a real cluster) runs in a pool of REPORT_WORKERS processes, not on the emulator's
thread, and the fake Job controller visits only the Jobs and Pods that changed: the emulator's one
thread is left to serving the API, which is what the operators under test and kopf's floor wait on.

    python benchmarks/operator_scale.py                # N = 100 and 1000
    python benchmarks/operator_scale.py --n 100 --n 1000 --n 5000 --write   # a new section in results/operator.md
    python benchmarks/operator_scale.py --n 1000 --n 5000 --shards 1 --shards 4 --floor   # sharded, vs kopf

`--shards K` runs K operator processes (`GENFAB_SHARD` i/K, genfab.operator.sharding): RSS and CPU are
then summed over the K processes, and the largest single process's peak RSS is reported too.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.emulator.harness import Emulator, OperatorProcess
from tests.emulator.kubelet import Behaviour, first_report

TITLE = "# Operator scale (emulated API server, fake Job controller)"
TARGET_P95_S = 2.0
TARGET_RSS_MB = 250.0
REPORT_WORKERS = 2


@dataclass
class Result:
    n: int
    rate: float
    floor: str
    shards: int
    """"aiohttp" or "kopf": measured with benchmarks/operator_floor.py (watching through that) in the
    operator's place; "": genfab's operator."""
    p50: float
    p95: float
    all_running: float
    rss_mb: float
    """Peak of the operator processes' RSS summed (all shards at the same instant)."""
    rss_process_mb: float
    """The largest single operator process's peak RSS."""
    requests_per_resource: float
    requests_by_kind: dict[str, float]
    """`METHOD resource` -> requests per resource."""
    reconciles_per_resource: float
    reconcile_seconds: float
    """Seconds spent inside reconciles (the operator's histogram sum), all workers together."""
    operator_cpu_s: float
    """CPU seconds the operator process used from the burst until all were Running."""
    emulator_cpu_s: float
    """CPU seconds of this process (the emulated API server, its fake Job controller, the sampler)."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def scenejob(i: int, inputs: Path, out: Path) -> dict[str, Any]:
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob",
            "metadata": {"name": f"bench-{i}", "namespace": f"bench-{i % 50}"},
            "spec": {"pipeline": "worldexplorer",
                     # genfab's own methods, named: the lab's SEVA and VGGT are refused without their images.
                     "worldexplorer": {"scaffold": {"method": "scaffold_gen"}, "expansion": {"method": "walk"}},
                     "input": {"datasetUri": f"file://{inputs}",
                               "samples": [{"index": 0, "photorealistic": {"path": "img.png"}}]},
                     "output": f"file://{out}/bench-{i}",
                     # a volume the stage Pods mount: without a model location the resource is refused
                     "models": {"persistentVolumeClaim": "models"}}}


class FloorProcess(OperatorProcess):
    """benchmarks/operator_floor.py, the least any operator must send per SceneJob, in the operator's
    place (`--floor`): the emulator's and the round trips' own cost on this machine."""

    def __init__(self, emulator: Emulator, workdir: Path, workers: int, via: str) -> None:
        super().__init__(emulator, workdir)
        self.workers, self.via = workers, via

    def start(self, *args: str) -> FloorProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("operator_floor.py")), "--url", self.emulator.url,
                 "--workers", str(self.workers), *(["--kopf"] if self.via == "kopf" else [])],
                stdout=log, stderr=subprocess.STDOUT, env=self.env)
        return self

    def healthy(self) -> bool:  # both watches open
        watchers = self.emulator.cluster.watchers
        return bool(watchers.get(("genfab.dev", "v1alpha1", "scenejobs")) and watchers.get(("", "v1", "pods")))

    def metrics(self) -> str:
        return ""


def run(n: int, workers: int, rate: float = 0.0, floor: str = "", shards: int = 1) -> Result:
    """`rate` resources/s (0: one burst, as `kubectl apply -f` of a directory); `floor`: the stand-in
    of benchmarks/operator_floor.py instead of genfab's operator, watching through "aiohttp" or "kopf"."""
    tmp = Path(tempfile.mkdtemp(prefix="genfab-opbench-"))
    (tmp / "in").mkdir()
    (tmp / "in" / "img.png").write_bytes(b"png")
    emu = Emulator(tick=0.1).start()
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(hold=True)
    # Each starting stage Pod lists its samples and writes its first report, as the stage does (the
    # operator reads progress from it). That runs in these processes, not on the emulator's thread,
    # which also serves the API: on a real cluster the stage's container does it, and here it took
    # ~1 ms of that thread per Pod.
    pool = ProcessPoolExecutor(REPORT_WORKERS, mp_context=multiprocessing.get_context("spawn"))
    for started in [pool.submit(first_report, "", 0, 1) for _ in range(REPORT_WORKERS)]:
        started.exception()  # started and imported before the burst (the empty config is refused)
    emu.kubelet.report_pool = pool
    for ns in sorted({scenejob(i, tmp, tmp)["metadata"]["namespace"] for i in range(n)}):
        emu.prepare_namespace(ns)  # what the chart renders into tenant namespaces
    created: dict[str, float] = {}
    first_job: dict[str, float] = {}

    def record(type_: str, res: tuple[str, str, str], obj: dict[str, Any]) -> None:
        if type_ != "ADDED":
            return
        meta = obj["metadata"]
        if res[2] == "scenejobs":
            created[meta["name"]] = time.monotonic()
        elif res[2] == "jobs":
            owner = meta["labels"]["genfab.dev/resource"]
            first_job.setdefault(owner, time.monotonic())
    emu.cluster.hooks.append(record)
    ops: list[OperatorProcess] = []
    for i in range(1 if floor else shards):
        workdir = tmp / f"op-{i}"
        workdir.mkdir()
        sharding = {"GENFAB_SHARD": f"{i}/{shards}"} if shards > 1 else {}
        ops.append((FloorProcess(emu, workdir, workers, floor) if floor else
                    OperatorProcess(emu, workdir, GENFAB_WORKERS=str(workers), GENFAB_RESYNC_SECONDS="60",
                                    GENFAB_PROGRESS_SECONDS="30", **sharding)).start())
    for op in ops:
        emu.wait("operator up", op.healthy, timeout=60, interval=0.2)
    procs = [psutil.Process(op.process.pid) for op in ops]  # type: ignore[union-attr]
    peak = [0.0, 0.0]
    stop = threading.Event()

    def sample_rss() -> None:
        # The process trees are looked up once a second, their RSS read every 50 ms: psutil's
        # children() reads every process's /proc entry, and doing that every 50 ms took ~12 % of this
        # process's GIL, which the emulator serving the operators shares (py-spy --gil, 4 shards).
        trees: list[list[psutil.Process]] = []
        looked = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() - looked > 1.0:
                    trees, looked = [[p, *p.children(recursive=True)] for p in procs], time.monotonic()
                each = [sum(q.memory_info().rss for q in tree) / 2**20 for tree in trees]
                peak[0], peak[1] = max(peak[0], sum(each)), max([peak[1], *each])
            except psutil.Error:
                looked = 0.0
            time.sleep(0.05)
    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    before = dict(emu.cluster.request_counts)
    cpu_before = [p.cpu_times() for p in procs], psutil.Process().cpu_times()
    docs = [scenejob(i, tmp / "in", tmp / "out") for i in range(n)]
    start = time.monotonic()

    def create(batch: list[dict[str, Any]]) -> None:
        for doc in batch:
            emu.cluster.create(("genfab.dev", "v1alpha1", "scenejobs"), doc["metadata"]["namespace"], doc)
    if rate <= 0:
        emu.call(create, docs)
    else:
        for i, doc in enumerate(docs):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            emu.call(create, [doc])

    def all_running() -> bool:
        def count() -> int:
            return sum((o.get("status") or {}).get("phase") == "Running"
                       for o in emu.cluster.objects("scenejobs"))
        return emu.call(count) == n
    emu.wait(f"{n} resources Running", all_running, timeout=600, interval=0.25)
    all_running_s = time.monotonic() - start
    cpu_after = [p.cpu_times() for p in procs], psutil.Process().cpu_times()
    op_cpu = sum((a.user + a.system) - (b.user + b.system) for a, b in zip(cpu_after[0], cpu_before[0], strict=True))
    emu_cpu = (cpu_after[1].user + cpu_after[1].system) - (cpu_before[1].user + cpu_before[1].system)
    time.sleep(1.0)  # let in-flight status patches land before counting requests
    metrics: dict[str, float] = {}
    for op in ops:
        for line in op.metrics().splitlines():
            if line.startswith("genfab_reconcile_seconds_"):
                name, value = line.split(" ")[:2]
                metrics[name] = metrics.get(name, 0.0) + float(value)
    by_kind = {op: (count - before.get(op, 0)) / n for op, count in emu.cluster.request_counts.items()
               if count > before.get(op, 0)}
    stop.set()
    sampler.join()
    for op in ops:
        op.stop()
    emu.stop()
    pool.shutdown(cancel_futures=True)
    latencies = [first_job[name] - created[name] for name in created if name in first_job]
    assert len(latencies) == n, f"only {len(latencies)} of {n} resources got a Job"
    return Result(n, rate, floor, 1 if floor else shards, statistics.median(latencies), percentile(latencies, 0.95),
                  all_running_s, peak[0], peak[1],
                  sum(by_kind.values()), by_kind, metrics.get('genfab_reconcile_seconds_count{kind="SceneJob"}', 0) / n,
                  metrics.get('genfab_reconcile_seconds_sum{kind="SceneJob"}', 0), op_cpu, emu_cpu)


def describe(r: Result) -> str:
    return (("one burst" if r.rate <= 0 else f"{r.rate:g}/s") + (f", floor ({r.floor})" if r.floor else "")
            + (f", {r.shards} shards" if r.shards > 1 else ""))


def table(results: list[Result]) -> str:
    lines = ["| N | created | create->Job p50 | create->Job p95 | p95 / target (2 s) | all Running | peak RSS "
             "(largest process) | RSS / target (250 MB) | API requests / resource |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r.n} | {describe(r)} | {r.p50:.3f} s | {r.p95:.3f} s | {r.p95 / TARGET_P95_S:.2f}x "
                     f"| {r.all_running:.1f} s | {r.rss_mb:.0f} MB ({r.rss_process_mb:.0f} MB) "
                     f"| {r.rss_mb / TARGET_RSS_MB:.2f}x | {r.requests_per_resource:.1f} |")
    bursts = [r for r in results if r.rate <= 0 and not r.floor and r.shards == 1]
    if len(bursts) == 2:
        a, b = bursts
        lines.append(f"| {b.n} vs {a.n} | ratio | {b.p50 / a.p50:.2f}x | {b.p95 / a.p95:.2f}x | | "
                     f"{b.all_running / a.all_running:.2f}x | {b.rss_mb / a.rss_mb:.2f}x | | "
                     f"{b.requests_per_resource / a.requests_per_resource:.2f}x |")
    floors = {r.n: r for r in results if r.floor == "kopf" and r.rate <= 0}
    ours = [r for r in results if not r.floor and r.rate <= 0 and r.n in floors]
    if ours:
        lines += ["", "genfab against kopf's floor (same N, same machine, this run; target p95 <= 2x):", "",
                  "| N | genfab | genfab p95 | kopf floor p95 | genfab / floor | all Running / floor's | "
                  "operator CPU / floor's |", "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in ours:
            f = floors[r.n]
            lines.append(f"| {r.n} | {r.shards} process{'es' if r.shards > 1 else ''} | {r.p95:.3f} s | "
                         f"{f.p95:.3f} s | **{r.p95 / f.p95:.2f}x** | {r.all_running / f.all_running:.2f}x | "
                         f"{r.operator_cpu_s / f.operator_cpu_s:.2f}x |")
    lines += ["", "API requests per resource by kind (N, created: `METHOD resource` count):", ""]
    for r in results:
        kinds = ", ".join(f"`{op}` {v:.2f}" for op, v in sorted(r.requests_by_kind.items(), key=lambda x: -x[1]))
        lines.append(f"- {r.n}, {describe(r)}: {kinds}; CPU until all Running: operator {r.operator_cpu_s:.1f} s, "
                     f"emulator {r.emulator_cpu_s:.1f} s; {r.reconciles_per_resource:.2f} reconciles per resource, "
                     f"{r.reconcile_seconds:.1f} s in reconciles")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, action="append", help="resource counts (default: 100 and 1000)")
    ap.add_argument("--workers", type=int, default=8, help="operator reconcile workers")
    ap.add_argument("--rate", type=float, action="append",
                    help="also run N=max(--n) created at this many resources/s (repeatable)")
    ap.add_argument("--floor", action="store_true", help="also run each N with benchmarks/operator_floor.py "
                    "(the least any operator sends) in the operator's place: the emulator's own cost")
    ap.add_argument("--shards", type=int, action="append",
                    help="operator processes sharing the resources (repeatable: each N is run at each; default 1)")
    ap.add_argument("--write", action="store_true", help="write benchmarks/results/operator.md")
    args = ap.parse_args()
    sizes = args.n or [100, 1000]
    results = [run(n, args.workers, shards=k) for n in sizes for k in args.shards or [1]]
    results += [run(max(sizes), args.workers, rate) for rate in args.rate or []]
    results += [run(n, args.workers, floor=via) for n in sizes for via in ("aiohttp", "kopf") if args.floor]
    text = table(results)
    print(text)
    if args.write:
        cpu = platform.processor() or platform.machine()
        out = Path(__file__).parent / "results" / "operator.md"
        title, _, history = out.read_text().partition("\n") if out.exists() else (TITLE, "", "")
        out.write_text(  # a new section under the title; the earlier sections (each slice's notes) stay
            f"{title}\n\n## Run of {time.strftime('%Y-%m-%d')}\n\n"
            f"{text}\n\n"
            f"Machine: {psutil.cpu_count()} CPUs ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB, "
            f"Python {platform.python_version()}, kopf {version('kopf')}, kubernetes {version('kubernetes')}, "
            f"kmock {version('kmock')}.\n\n"
            f"Command: `python benchmarks/operator_scale.py{' --n ' + ' --n '.join(map(str, args.n)) if args.n else ''}"
            f"{''.join(f' --rate {r:g}' for r in args.rate or [])}"
            f"{''.join(f' --shards {k}' for k in args.shards or [])}"
            f"{' --floor' if args.floor else ''}"
            f" --workers {args.workers} --write`\n\n"
            "Each resource is a 3-stage SceneJob with one sample, created in one burst or at the rate shown;\n"
            "every stage Pod "
            "is held Running by the fake kubelet, so 'Running' means: planned, input listed, ConfigMap and Job\n"
            "created, Pod observed, status patched. The emulator runs in the benchmark process and shares the\n"
            "machine's CPUs with the operator.\n" + history)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
