"""What measuring the relighting mask costs: the quality figures (`mask_figures`) beside the segment
stage's own per-sample work on the CPU path (classical segmentation, the cleanup, the split into the
three PNGs and their encoding), on the four bundled portraits at their size and scaled to 1024 px.

Side by side in one process on one machine, each the best of `--repeat` runs; the ratio is the figures'
share of the stage's per-sample time (the issue's bound: 5 %). `--write` records the table in
benchmarks/results/quality_cost.md.

    python benchmarks/quality_cost.py --write
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / p) for p in ("operator", "stages")]

from bounded_json import best  # noqa: E402

from genfab.stages.relighting.classical import segment_classical  # noqa: E402
from genfab.stages.relighting.images import encode  # noqa: E402
from genfab.stages.relighting.mask_figures import mask_figures  # noqa: E402
from genfab.stages.relighting.matte import clean_mask, split  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "quality_cost.md"


def stage_work(image: np.ndarray) -> object:
    """The segment stage's per-sample work on the CPU path, figures left out."""
    mask, _ = segment_classical(image, 0)
    cleaned = clean_mask(mask)
    return {name: encode(pixels) for name, pixels in split(image, cleaned.mask).items()}, cleaned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rows = []
    for path in sorted((ROOT / "examples" / "data" / "portraits").iterdir()):
        original = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if original is None:
            continue
        scale = 1024 / max(original.shape[:2])
        for label, image in ((f"{original.shape[1]}x{original.shape[0]}", original),
                             ("1024 px", cv2.resize(original, None, fx=scale, fy=scale,
                                                    interpolation=cv2.INTER_CUBIC))):
            _, cleaned = stage_work(image)  # type: ignore[misc]
            work = best(lambda image=image: stage_work(image), args.repeat)  # type: ignore[misc]
            figures = best(lambda image=image, cleaned=cleaned: mask_figures(image, cleaned), args.repeat)  # type: ignore[misc]
            rows.append((path.stem, label, work, figures))
            print(f"{path.stem:10} {label:>9}  stage {work * 1000:8.1f} ms  figures {figures * 1000:7.1f} ms  "
                  f"share {figures / (work + figures):6.1%}")
    total_work = sum(r[2] for r in rows)
    total_fig = sum(r[3] for r in rows)
    print(f"all: figures are {total_fig / (total_work + total_fig):.1%} of the stage's per-sample time")
    if args.write:
        lines = ["# The relighting mask's quality figures: their cost beside the segment stage's work", "",
                 "- command: `python benchmarks/quality_cost.py --write`",
                 f"- machine: {platform.machine()}, {platform.processor() or '?'}, Python {platform.python_version()}, "
                 f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} OpenCV threads",
                 "- stage: the CPU path's per-sample work (classical segmentation, cleanup, split, PNG encoding); "
                 "figures: `mask_figures` (all ten); best of "
                 f"{args.repeat} runs each, in one process", "",
                 "| portrait | size | stage ms | figures ms | figures' share |", "| --- | --- | ---: | ---: | ---: |"]
        lines += [f"| {name} | {label} | {w * 1000:.1f} | {f * 1000:.1f} | {f / (w + f):.1%} |"
                  for name, label, w, f in rows]
        lines += ["", f"All together the figures are {total_fig / (total_work + total_fig):.1%} of the stage's "
                  "per-sample time (the bound: 5 %)."]
        RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
