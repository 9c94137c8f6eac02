"""What each step of one big job costs, from 1,000 to 1,000,000 samples, beside a floor (file://).

Each step runs in a forked child of this process (so its peak memory is its own: the child's peak RSS
less an idle child's), once per size, side by side with its floor, the least any program doing that
step must do, on the same machine:

- input listing: genfab's listing of an input folder (`discover_inputs`: suffixes, sample ids) against
  the names and sizes of `os.scandir`, sorted (what a bucket's listing gives);
- the sample manifest (the run's one listing, written for the shards): `write_manifest` against one
  `json.dump` of the same ids;
- a shard's samples: one 32-sample shard's slice from the manifest (`read_slice`, two part files at
  most) against `json.load` of the whole list and a slice of it;
- the resume check (which samples are committed, half of them here): genfab's reuse check of every
  sample (its marker read and checked, its output's size) against `os.path.exists` of every marker;
- the operator while a stage runs (reports of N/100 shards of 100 samples): every reconcile's reads
  until every finished shard is in the tally (`ProgressReader`), against reading every report once in
  a plain loop; the table says the most reports one reconcile read;
- status aggregation: folding every report into the stage's tally (`tally.fold`) against a plain loop
  summing the reports' counts;
- the summary: the summary document from the tally (what the operator writes) against `json.dumps` of
  the counts; and the local runner's per-sample records (`dropped_samples.csv` from every report) against
  a plain `csv.writer` of the same rows.
- the report: `genfab report`'s writer with its default 200 samples pictured, on a relighting output of N
  samples (five pictures each, hard links of one file: `report_scale.make_output`), against listing the
  output once.

    python benchmarks/big_jobs.py --sizes 1000,10000,100000,1000000 --write
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import pickle
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / p) for p in ("operator", "stages")]

from report_scale import make_output  # noqa: E402

from genfab.api import parse_resource  # noqa: E402
from genfab.api.status import ResourceStatus, StageStatus  # noqa: E402
from genfab.inventory import FailedSample, ShardReport, discover_inputs, write_report  # noqa: E402
from genfab.inventory.manifest import read_manifest, read_slice, write_manifest  # noqa: E402
from genfab.operator import read_budget  # noqa: E402
from genfab.operator.progress import ProgressReader  # noqa: E402
from genfab.planner import plan as make_plan  # noqa: E402
from genfab.sequencing.summary import dropped_csv, stage_row, summary_document  # noqa: E402
from genfab.status import tally  # noqa: E402
from genfab.storage.local import FileStorage  # noqa: E402
from genfab.storage.markers import Marker, check_reuse, write_marker  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "big_jobs.md"
HASH = "b" * 64
SHARD = 100
"""Samples per shard of the stage whose reports are read (relighting-like shards)."""


class Refused(str):
    """What a step said when it refused a size (its row says it instead of a time)."""


def measured(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(seconds, peak RSS in MB of the child that ran it, fn's result) with `fn` run in a forked child."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        started = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:  # a step that refuses this size: said in its row
            result = Refused(" ".join(str(exc).split())[:200])
        seconds = time.perf_counter() - started
        with os.fdopen(write, "wb") as out:
            pickle.dump((seconds, result), out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as inp:
        seconds, result = pickle.load(inp)
    _, _, usage = os.wait4(pid, 0)
    return seconds, usage.ru_maxrss / 1024, result


def make_inputs(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        os.close(os.open(folder / f"p{i:07d}.png", os.O_CREAT | os.O_WRONLY, 0o644))


def make_committed(out: Path, n: int) -> None:
    """Half the samples committed: an output and its marker each."""
    store = FileStorage(f"file://{out}", out)
    for i in range(0, n, 2):
        sid = f"p{i:07d}"
        (out / sid).mkdir(parents=True)
        (out / sid / "mask.png").write_bytes(b"m")
        write_marker(store, sid, Marker(HASH, {f"{sid}/mask.png": "0" * 64}, sizes={f"{sid}/mask.png": 1}))


def make_reports(run: Path, n: int) -> int:
    store = FileStorage(f"file://{run}", run)
    shards = max(1, n // SHARD)
    for index in range(shards):
        ids = [f"p{i:07d}" for i in range(index * SHARD, min(n, (index + 1) * SHARD))]
        bad = ids[:1] if index % 10 == 0 else []
        write_report(store, ShardReport("segment", HASH, index, shards, state="succeeded", total=len(ids),
                                        succeeded=ids[len(bad):], failed=[FailedSample(b, "SampleError", "x")
                                                                          for b in bad],
                                        produced_by={"classical": len(ids) - len(bad)}))
    return shards


def steps(root: Path, n: int) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    inputs, out, run = root / "in", root / "out", root / "run"
    inp = FileStorage(f"file://{inputs}", inputs)
    runs = FileStorage(f"file://{run}", run)
    shards = max(1, n // SHARD)
    ids = [f"p{i:07d}" for i in range(n)]

    def listing() -> int:
        return len(discover_inputs(inp, (".png",)))

    def listing_floor() -> int:  # what a bucket's listing gives: names and sizes, sorted
        with os.scandir(inputs) as entries:
            return len(sorted((e.name, e.stat().st_size) for e in entries))

    def manifest() -> int:
        return write_manifest(runs, "list", HASH, [(s.id, s.source) for s in discover_inputs(inp, (".png",))]).count

    def manifest_floor() -> int:
        names = sorted(os.listdir(inputs))
        (run / "plain.json").write_text(json.dumps([[name.rpartition(".")[0], name] for name in names]))
        return len(names)

    def shard_slice() -> int:
        m = read_manifest(runs, "list", HASH)
        return len(read_slice(runs, m, n // 2, n // 2 + 32))

    def shard_slice_floor() -> int:
        return len(json.loads((run / "plain.json").read_text())[n // 2: n // 2 + 32])

    def resume() -> int:
        store = FileStorage(f"file://{out}", out)
        return sum(check_reuse(store, sid, HASH).committed for sid in ids)

    def resume_floor() -> int:
        return sum(os.path.exists(out / sid / "_SUCCESS.json") for sid in ids)

    def operator() -> tuple[int, int, int]:
        resource = parse_resource({"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob",
                                   "metadata": {"name": "big", "namespace": "lab"},
                                   "spec": {"type": "relighting", "output": f"file://{run}",
                                            "relighting": {"input": {"uri": f"file://{inputs}"}}}})
        p = make_plan(resource)
        stage = p.stages[0]
        # the reports were written under the benchmark's hash: read them as this stage's
        reports = run / "_genfab" / "progress" / "segment"
        link = reports / stage.config_hash[:10]
        if not link.exists():
            link.symlink_to(reports / HASH[:10])
        job = {"metadata": {"name": f"big-{stage.name}-{stage.short_hash}", "uid": "u"},
               "spec": {"completions": shards},
               "status": {"completedIndexes": f"0-{shards - 1}", "conditions": [{"type": "Complete",
                                                                                  "status": "True"}]}}
        reader = ProgressReader(10.0, read_budget.ReadBounds().reports)
        bounds, pool = read_budget.ReadBounds(), read_budget.BytePool(64 << 20)
        reconciles = most = 0
        while True:
            with read_budget.budget(bounds, pool) as spend:
                reading = reader.read(("DatasetJob", "lab", "big"), p, [job], {}, None,
                                      lambda: read_budget.BudgetedStorage(FileStorage(f"file://{run}", run), spend))
            reconciles += 1
            most = max(most, spend.requests)
            if not reading.more:
                break
        got = reading.progress[stage.name]
        return got.succeeded, reconciles, most

    def operator_floor() -> int:
        folder = run / "_genfab" / "progress" / "segment" / HASH[:10]
        return sum(len(json.loads(path.read_bytes())["succeeded"]) for path in sorted(folder.iterdir()))

    parsed: list[ShardReport] = []

    def load_reports() -> None:
        folder = run / "_genfab" / "progress" / "segment" / HASH[:10]
        parsed.extend(ShardReport.from_json(path.read_bytes()) for path in sorted(folder.iterdir()))

    def aggregate() -> int:
        load_reports()
        started = time.perf_counter()
        t = tally.fold(tally.start("u"), {r.index: r for r in parsed})
        return int((time.perf_counter() - started) * 1e6) if t.succeeded else 0

    def aggregate_floor() -> int:
        load_reports()
        started = time.perf_counter()
        total = sum(len(r.succeeded) for r in parsed) + sum(len(r.failed) for r in parsed)
        return int((time.perf_counter() - started) * 1e6) if total else 0

    def summary() -> int:
        load_reports()
        t = tally.fold(tally.start("u"), {r.index: r for r in parsed})
        p = make_plan(parse_resource({"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob",
                                      "metadata": {"name": "big", "namespace": "lab"},
                                      "spec": {"type": "relighting", "output": f"file://{run}",
                                               "relighting": {"input": {"uri": f"file://{inputs}"}}}}))
        started = time.perf_counter()
        st = StageStatus(name=p.stages[0].name, phase="Succeeded", tally=t)
        rows = [stage_row(p.stages[0], st, t, seconds=60.0)]
        doc = summary_document(p, ResourceStatus(phase="Succeeded", stages=[st]), rows, t.failed,
                               continue_on_error=True, finished_at="2026-11-27T00:00:00Z", executor="operator")
        doc.to_json()  # the bytes the executors write (run_records.write_run_records)
        return int((time.perf_counter() - started) * 1e6)

    def summary_floor() -> int:
        load_reports()
        started = time.perf_counter()
        json.dumps({"succeeded": sum(len(r.succeeded) for r in parsed), "failed": sum(len(r.failed) for r in parsed)})
        return int((time.perf_counter() - started) * 1e6)

    def records() -> int:
        load_reports()
        p = make_plan(parse_resource({"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob",
                                      "metadata": {"name": "big", "namespace": "lab"},
                                      "spec": {"type": "relighting", "output": f"file://{run}",
                                               "relighting": {"input": {"uri": f"file://{inputs}"}}}}))
        started = time.perf_counter()
        dropped_csv(p, {p.stages[0].name: {r.index: r for r in parsed}})
        return int((time.perf_counter() - started) * 1e6)

    def records_floor() -> int:
        load_reports()
        started = time.perf_counter()
        buf = io.StringIO()
        writer = csv.writer(buf)
        for r in parsed:
            for f in r.failed:
                writer.writerow(["segment", f.id, f.reason, f.message])
        return int((time.perf_counter() - started) * 1e6)

    def report() -> int:
        from genfab.report.writer import ReportWriter
        return ReportWriter(FileStorage(f"file://{root / 'rep'}", root / "rep"), max_pictures=200).write().pages

    def report_floor() -> int:
        return sum(1 for _ in FileStorage(f"file://{root / 'rep'}", root / "rep").list(""))

    return [("input listing", listing, listing_floor),
            ("sample manifest (the run's one listing, written)", manifest, manifest_floor),
            ("a shard's 32 samples", shard_slice, shard_slice_floor),
            ("resume check (half committed)", resume, resume_floor),
            ("operator: every finished shard read once", operator, operator_floor),
            ("status aggregation (fold every report)", aggregate, aggregate_floor),
            ("summary from the tally", summary, summary_floor),
            ("per-sample records (dropped_samples.csv)", records, records_floor),
            ("report (200 samples pictured)", report, report_floor)]


WHY = {
    "input listing": "one pass over the folder; per object a stat, its sample id and a few dict operations "
                     "(the floor does the stat and the sort only); per sample it grows about as log n (the sort, "
                     "a working set past the caches). Once per stage start: by `genfab run`, or on a cluster by "
                     "the inventory Job when the input is too big for a reconcile.",
    "sample manifest (the run's one listing, written)": "the listing plus 10,000-sample JSON parts written once; "
                                                         "every shard then reads only its own part(s).",
    "a shard's 32 samples": "the manifest's header and the one part the slice falls in, whatever the size (the "
                            "floor reads the whole list; before, every shard listed the whole input again).",
    "resume check (half committed)": "each sample's marker read and checked (its JSON, its outputs' sizes): in "
                                     "the shards, in parallel, once per sample; flat per sample.",
    "operator: every finished shard read once": "one GET per shard, at most 500 per reconcile (the rest the next "
                                                "reconcile): the operator's work per reconcile is bounded, its "
                                                "total grows with the shards, not the samples.",
    "status aggregation (fold every report)": "each report folded once into a tally of fixed size; per sample "
                                              "it is the reports' own lists being counted.",
    "summary from the tally": "made from the tally, not the reports: the same time at any size.",
    "report (200 samples pictured)": "the thumbnails of the pictured samples (the same at any size) plus one "
                                     "listing of the output, held front-coded (`KeyIndex`), rows made only when "
                                     "pictured or streamed into `samples.csv`; what grows is the listing, as the "
                                     "floor's (which holds the largest folder's names while it walks it: 4,000,000 "
                                     "at 1,000,000 samples).",
    "per-sample records (dropped_samples.csv)": "a row per dropped sample (a tenth of the shards drop one "
                                                "here): grows with the drops, as the floor does.",
}
"""Why each step costs what it does (the results' commentary)."""


IN_PROCESS = {"status aggregation (fold every report)", "summary from the tally",
              "per-sample records (dropped_samples.csv)"}
"""Steps whose result is their own timing in microseconds (the reports' parsing left out)."""


def run(sizes: list[int], keep: Path | None, only: list[str]) -> list[dict[str, Any]]:
    rows = []
    idle = measured(lambda: None)[1]
    for n in sizes:
        root = (keep / str(n)) if keep else Path(tempfile.mkdtemp(prefix=f"genfab-big-{n}-"))
        try:
            if not (root / "in").exists():
                started = time.perf_counter()
                make_inputs(root / "in", n)
                make_committed(root / "out", n)
                make_reports(root / "run", n)
            if not (root / "rep").exists():
                started = time.perf_counter()
                (root / "rep").mkdir()
                make_output(root / "rep", n)
                print(f"n={n}: made in {time.perf_counter() - started:.1f} s", flush=True)
            for name, step, floor in steps(root, n):
                if only and not any(word in name for word in only):
                    continue
                s_sec, s_mb, s_res = measured(step)
                f_sec, f_mb, f_res = measured(floor)
                if name in IN_PROCESS:
                    s_sec, f_sec = s_res / 1e6, f_res / 1e6
                extra = f"refused: {s_res}" if isinstance(s_res, Refused) else ""
                if name.startswith("operator"):
                    extra = f"{s_res[1]} reconciles, at most {s_res[2]} requests each"
                row = {"n": n, "step": name, "seconds": s_sec, "floor": f_sec, "mb": max(0.0, s_mb - idle),
                       "floor_mb": max(0.0, f_mb - idle), "extra": extra}
                rows.append(row)
                print(f"n={n:>9,} {name:<50} {s_sec:9.3f} s ({s_sec / n * 1e6:7.2f} us/sample) "
                      f"floor {f_sec:8.3f} s  x{s_sec / max(f_sec, 1e-6):6.2f}  +{row['mb']:.0f} MB "
                      f"(floor +{row['floor_mb']:.0f}) {extra}", flush=True)
        finally:
            if keep is None:
                shutil.rmtree(root, ignore_errors=True)
    return rows


def table(rows: list[dict[str, Any]], command: str) -> str:
    sizes = sorted({r["n"] for r in rows})
    lines = ["# One big job: each step's cost from 1,000 to 1,000,000 samples, beside a floor", "",
             f"- command: `{command}`",
             f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
             f"- Python {platform.python_version()}; file:// on the machine's disk",
             "- each step in a forked child: seconds, and MB = the child's peak RSS less an idle child's (for "
             "the last three steps both sides parse every report first: their MB is mostly that, their "
             "seconds are the step alone)",
             "- us/sample = microseconds per sample; x = seconds / the floor's seconds", ""]
    lines += ["## Where each step stands", "",
              "Per-sample time and memory at the largest size against 10,000 samples (1.0x: flat):", "",
              "| step | time/sample, largest vs 10,000 | MB/sample, largest vs 10,000 | why |",
              "| --- | ---: | ---: | --- |"]
    for step in dict.fromkeys(r["step"] for r in rows):
        ten = next((r for r in rows if r["step"] == step and r["n"] == 10_000), None)
        big = max((r for r in rows if r["step"] == step and not r["extra"].startswith("refused")),
                  key=lambda r: r["n"])
        if ten is None or big["n"] == 10_000:
            continue
        t = (big["seconds"] / big["n"]) / max(ten["seconds"] / ten["n"], 1e-12)
        m = (big["mb"] / big["n"]) / max(ten["mb"] / ten["n"], 1e-12) if ten["mb"] else float("nan")
        lines.append(f"| {step} | {t:.2f}x | {m:.2f}x | {WHY.get(step, '')} |")
    lines.append("")
    for step in dict.fromkeys(r["step"] for r in rows):
        lines += [f"## {step}", "", "| samples | seconds | us/sample | floor s | x floor | MB | floor MB | |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for n in sizes:
            r = next((r for r in rows if r["n"] == n and r["step"] == step), None)
            if r is None:
                continue
            lines.append(f"| {n:,} | {r['seconds']:.3f} | {r['seconds'] / n * 1e6:.2f} | {r['floor']:.3f} | "
                         f"{r['seconds'] / max(r['floor'], 1e-6):.2f} | {r['mb']:.0f} | {r['floor_mb']:.0f} | "
                         f"{r['extra']} |")
        lines.append("")
    lines += ["Reading these numbers:",
              "- The operator's work per reconcile is bounded (at most 500 report reads, kept within the "
              "reconcile's budget); a stage of 10,000 shards is read over 20 reconciles, each report once. What "
              "grows with the samples (listing, the manifest, the resume check, the per-sample records) runs "
              "once: in `genfab run`, in an inventory Pod, or in the shards themselves.",
              "- The S3 server the tests use (moto) lists a page of 1,000 keys by sorting the whole bucket: "
              "0.65 s a page at 30,000 keys, so 300,000 keys take about half an hour to list through it; the "
              "emulator tier gives it a sorted index for its 300,000-object test. A real store (S3, MinIO, Ceph "
              "RGW) answers a page in tens of milliseconds at any size: 1,000,000 objects are 1,000 pages.",
              "- The report's pictures are hard links of one 384x512 PNG (`report_scale.py`), five per sample: its "
              "output of 1,000,000 samples is 6,000,000 keys.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--keep", type=Path, help="make the folders here and keep them for the next run")
    parser.add_argument("--write", action="store_true", help=f"record the table in {RESULTS}")
    parser.add_argument("--steps", default="", help="only the steps whose names hold one of these words "
                        "(comma-separated; the results file is then left alone)")
    args = parser.parse_args()
    only = [w for w in args.steps.split(",") if w]
    rows = run([int(s) for s in args.sizes.split(",")], args.keep, only)
    text = table(rows, "python benchmarks/big_jobs.py " + " ".join(sys.argv[1:]))
    print(text)
    if args.write and not only:
        RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
