"""The operator's bounded JSON decoding (genfab.operator.bounded_json) against a plain `json.loads`, on
the list bodies kopf decodes on its event loop: a list of SceneJobs (benign) and the same list holding
one object nested thousands of levels in a custom stage's `config` (a hostile tenant, finding L4 of
the third hostile-tenant round). Side by side in one process:

- `json.loads` of the benign list (the floor: what any decoding costs);
- genfab's `loads` of the benign list (its depth check);
- genfab's `loads` of the hostile list (decoded part by part, only the deep object's text scanned);
- the whole-text cut of the hostile list (what `loads` did before: scan all of the text, decode, walk).

    python benchmarks/bounded_json.py              # 20 MB lists, prints the table
    python benchmarks/bounded_json.py --write      # also writes benchmarks/results/bounded_json.md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genfab.operator import bounded_json as bj

RESULTS = Path(__file__).resolve().parent / "results" / "bounded_json.md"


def scenejob(i: int) -> dict[str, Any]:
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob",
            "metadata": {"name": f"s{i}", "namespace": f"team-{i % 50}", "uid": f"{i:032x}",
                         "labels": {"team": "vision"}, "resourceVersion": str(i)},
            "spec": {"pipeline": "worldexplorer", "output": f"s3://lab-out/team/s{i}",
                     "input": {"samples": [{"index": k, "prompt": "a quiet street at dusk",
                                            "photorealistic": {"original_path": f"img/{k:04d}.png"}}
                                           for k in range(40)]}}}


def nested(levels: int) -> Any:
    node: Any = {"leaf": 1}
    for _ in range(levels):
        node = {"a": node}
    return node


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def whole_text_cut(text: str) -> Any:
    cut, _ = bj._cut_text(text, bj.MAX_DEPTH)
    return bj._cut(json.loads(cut), bj.MAX_DEPTH)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=20.0, help="size of the list bodies")
    ap.add_argument("--levels", type=int, default=3000, help="nesting of the hostile object")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    one = len(json.dumps(scenejob(0)))
    items = [scenejob(i) for i in range(int(args.mb * 1e6 / one))]
    benign = json.dumps({"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJobList", "items": items})
    hostile_item = {**scenejob(len(items)), "spec": {"customStages": [{"name": "x", "image": "x",
                                                                       "config": nested(args.levels)}]}}
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(args.levels * 4)
    hostile = json.dumps({"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJobList",
                          "items": [*items[: len(items) // 2], hostile_item, *items[len(items) // 2:]]})
    sys.setrecursionlimit(before)
    floor = best(lambda: json.loads(benign), args.repeat)
    rows = [("json.loads, benign list (floor)", floor),
            ("genfab loads, benign list", best(lambda: bj.loads(benign), args.repeat)),
            ("genfab loads, hostile list (part by part)", best(lambda: bj.loads(hostile), args.repeat)),
            ("whole-text cut, hostile list (before)", best(lambda: whole_text_cut(hostile), args.repeat))]
    assert bj.loads(hostile) == whole_text_cut(hostile)
    lines = [f"# Bounded JSON decoding on kopf's event loop ({len(benign) / 1e6:.1f} MB list, one object "
             f"{args.levels} levels deep)", "",
             f"Python {platform.python_version()}, {platform.processor() or platform.machine()}; "
             f"`python benchmarks/bounded_json.py --mb {args.mb:g} --levels {args.levels}` (best of {args.repeat}).",
             "", "| decode | seconds | / json.loads |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {seconds:.3f} | {seconds / floor:.2f}x |" for name, seconds in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
