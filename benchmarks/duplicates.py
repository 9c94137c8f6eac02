"""reference-object's near-duplicate search (`duplicateDistance`): each scene's nearest earlier scene
within 8 bits by multi-index hashing (`multi_index_within` of genfab.stages.reference_object.duplicates)
against the search it replaced, every scene against every earlier one (`every_pair_within`: numpy, a
vectorised row per scene, as main had it; still used up to 20,000 scenes), in one process on the same
hashes. The hashes are a lab's mix: two thirds copies of a few hundred scenes with 0-12 bits changed (an
edit model that ignored its prompt, re-encodes), a third unrelated. The baseline runs up to
`--baseline-max` scenes (it is O(n^2)); the two must agree exactly where both ran.

    python benchmarks/duplicates.py                    # 10,000 / 100,000 / 1,000,000 scenes
    python benchmarks/duplicates.py --write            # also writes benchmarks/results/duplicates.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / p) for p in ("operator", "stages")]

from genfab.api.quality import DUPLICATE_RADIUS  # noqa: E402
from genfab.stages.reference_object.duplicates import every_pair_within, multi_index_within  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "duplicates.md"


def lab_hashes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**64, max(1, n // 200), dtype=np.uint64)
    values = centres[rng.integers(0, len(centres), n)]
    flips = rng.integers(0, 13, n)
    for bit in range(64):  # each copy gets about `flips` of its 64 bits changed
        values ^= (rng.random(n) < flips / 64).astype(np.uint64) << np.uint64(bit)
    unrelated = rng.random(n) < 1 / 3
    values[unrelated] = rng.integers(0, 2**64, int(unrelated.sum()), dtype=np.uint64)
    return values


def timed(fn, *args):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--baseline-max", type=int, default=100_000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rows = ["| scenes | every pair (s) | multi-index (s) | every pair / multi-index | near-duplicates found |",
            "| ---: | ---: | ---: | ---: | ---: |"]
    measured: tuple[int, float] | None = None  # the largest size the baseline ran at, and its seconds
    for n in (int(s) for s in args.sizes.split(",")):
        values = lab_hashes(n)
        found, fast = timed(multi_index_within, values, DUPLICATE_RADIUS)
        if n <= args.baseline_max:
            expected, slow = timed(every_pair_within, values, DUPLICATE_RADIUS)
            assert np.array_equal(found, expected), "the two searches disagree"
            measured = (n, slow)
            cells = f"{slow:.2f} | {fast:.2f} | **{slow / fast:.1f}x**"
        elif measured is not None:
            guess = measured[1] * (n / measured[0]) ** 2
            cells = f"about {guess:,.0f} (n^2 from {measured[0]:,}; not run) | {fast:.2f} | about {guess / fast:.0f}x"
        else:
            cells = f"not run | {fast:.2f} | -"
        rows.append(f"| {n:,} | {cells} | {int((found >= 0).sum()):,} |")
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(table)
    if args.write:
        RESULTS.write_text(
            "# Near-duplicate search: multi-index hashing against every pair\n\n"
            f"`python benchmarks/duplicates.py --sizes {args.sizes} --baseline-max {args.baseline_max} --write` on "
            f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs), "
            f"Python {platform.python_version()}, numpy {np.__version__}, one process, one core. Radius "
            f"{DUPLICATE_RADIUS} bits; the two agree exactly wherever both ran.\n\n{table}\n")


if __name__ == "__main__":
    main()
