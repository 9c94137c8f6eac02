"""What the operator reads of a worker Job per reconcile, from 1,000 to 100,000 shards, beside the records
workers wrote before.

A worker Job's W warm workers take shards from the stage's cursor in turn (worker w gets every W-th
index, as they finish at about the same pace) and each keeps a record (genfab.inventory.workers). The
operator reads the cursor and the W records every `progressSeconds` and works out which shards finished
(`finished_shards`). Measured at half the stage done, with W = 8, in this process:

- **now**: a record names its current shard and the ones it failed for good (a few here: one in 1,000);
  the finished shards are the cursor's, less the running and failed ones;
- **before**: each record also listed the shards its worker finished, as ranges: every W-th index, so
  one range per finished shard (what workers wrote until this was measured).

Per size: the bytes of one pass over the cursor and the records, the microseconds to parse them and
work out the finished shards (best of 5), and the bytes one worker writes over the stage (its record
after each of its shards: before, a record that grows with every one).

    python benchmarks/worker_records.py [--shards 1000 --shards 10000 --shards 100000] [--write]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "stages")]

from pydantic import TypeAdapter  # noqa: E402

from genfab.contract import indexes  # noqa: E402
from genfab.inventory.workers import MAX_RECORD_BYTES, WorkerRecord, finished_shards  # noqa: E402

WORKERS = 8
FAIL_EVERY = 1000
"""One shard in this many fails for good (a bad input)."""
ADAPTER = TypeAdapter(WorkerRecord)


def records(shards: int, listed: bool) -> tuple[bytes, list[bytes]]:
    """The cursor and the W records at half the stage taken, as JSON (`listed`: with the finished shards)."""
    taken = shards // 2
    out = []
    for w in range(WORKERS):
        mine = list(range(w, taken, WORKERS))
        current = mine.pop() if mine else None
        failed = [i for i in mine if i % FAIL_EVERY == FAIL_EVERY - 1]
        done = [i for i in mine if i % FAIL_EVERY != FAIL_EVERY - 1]
        record = WorkerRecord(w, shards, current=current, attempt=1, failed=indexes.text(indexes.of(failed)),
                              done=indexes.text(indexes.of(done)) if listed else "")
        out.append(json.dumps(asdict(record)).encode())
    return json.dumps({"next": taken}).encode(), out


def one_pass(cursor: bytes, raw: list[bytes], shards: int) -> tuple[indexes.Ranges, indexes.Ranges]:
    """What a reconcile does with them: parse, then the finished shards."""
    taken = int(json.loads(cursor)["next"])
    return finished_shards(taken, [ADAPTER.validate_json(r) for r in raw], shards)


def written(shards: int, listed: bool) -> int:
    """The bytes worker 0 writes over the stage: its record after each shard it took."""
    record, total = WorkerRecord(0, shards), 0
    for index in range(0, shards, WORKERS):
        record.current, record.attempt = index, 1
        total += len(json.dumps(asdict(record)))
        record.add(index)
        if listed:
            record.done = indexes.text(indexes.union(indexes.parse(record.done), ((index, index),)))
        total += len(json.dumps(asdict(record)))
    return total


def best_us(fn: Any, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best * 1e6


def measure(shards: int) -> dict[str, Any]:
    row: dict[str, Any] = {"shards": shards}
    results = {}
    for name, listed in (("now", False), ("before", True)):
        cursor, raw = records(shards, listed)
        results[name] = one_pass(cursor, raw, shards)
        row[name] = {"bytes": len(cursor) + sum(map(len, raw)), "largest": max(map(len, raw)),
                     "us": best_us(lambda c=cursor, r=raw: one_pass(c, r, shards)),
                     "written": written(shards, listed)}
    assert results["now"] == results["before"], "the two ways must find the same shards"
    done, failed = results["now"]
    row["finished"] = indexes.count(done) + indexes.count(failed)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{WORKERS} workers, half of the stage taken, one shard in {FAIL_EVERY} failed for good; Python "
             f"{platform.python_version()}, {platform.machine()}", "",
             "| shards | one pass now: bytes | before: bytes (largest record) | parse and count now: us | before: us "
             "| before / now | one worker writes over the stage, now | before |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        n, b = r["now"], r["before"]
        over = " (past the 256 KiB a record may hold: refused)" if b["largest"] > MAX_RECORD_BYTES else ""
        lines.append(f"| {r['shards']:,} | {n['bytes']:,} | {b['bytes']:,} ({b['largest']:,}{over}) | {n['us']:,.0f} "
                     f"| {b['us']:,.0f} | {b['us'] / n['us']:.1f}x | {n['written'] / 2**20:,.2f} MiB "
                     f"| {b['written'] / 2**20:,.1f} MiB |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, action="append", help="stage sizes (default 1,000, 10,000, 100,000)")
    parser.add_argument("--write", action="store_true", help="append a section to benchmarks/results/streaming.md")
    args = parser.parse_args()
    rows = [measure(n) for n in (args.shards or [1000, 10_000, 100_000])]
    text = table(rows)
    print(text)
    if args.write:
        path = ROOT / "benchmarks/results/streaming.md"
        command = "python benchmarks/worker_records.py" + "".join(f" --shards {n}" for n in args.shards or [])
        path.write_text(path.read_text().rstrip() + "\n\n## What the operator reads of a worker Job, 1,000 to "
                        f"100,000 shards\n\n    {command} --write\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
