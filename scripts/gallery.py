"""The pictures of real outputs in the docs, made from a run's output folder (nothing drawn by hand):

    genfab run examples/datasetjob-relighting.yaml --out file://./genfab-runs/gallery
    python scripts/gallery.py genfab-runs/gallery      # writes docs/pipelines/images/relighting-main-job.jpg

One row per sample: the input, stage 1's person mask over it (green, the rest dimmed), the albedo
and the relit output. `tests/storage/test_relighting_pipeline.py` runs the main job and holds the
committed picture to what it makes, so the docs show what the README's main job produces today."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RELIGHTING_GALLERY = ROOT / "docs" / "pipelines" / "images" / "relighting-main-job.jpg"
TILE_HEIGHT = 240
JPEG_QUALITY = 88
HEADER = 28
COLUMNS = ("input", "person mask (stage 1)", "albedo (stage 2)", "output (relit)")


def _tile(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * TILE_HEIGHT / h)), TILE_HEIGHT), interpolation=cv2.INTER_AREA)


def _overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = image.astype(np.float32)
    out[~mask] *= 0.35
    out[mask] = out[mask] * 0.6 + np.array([0.0, 255.0, 0.0], np.float32) * 0.4
    return out.astype(np.uint8)


def relighting_sheet(run: Path) -> np.ndarray:
    """The gallery of a finished relighting run (BGR): one row per sample of `data/outputs/`."""
    outputs = run / "data" / "outputs"
    ids = sorted(p.name.removesuffix("_output.png") for p in outputs.glob("*_output.png"))
    if not ids:
        raise FileNotFoundError(f"no data/outputs/*_output.png under {run}: is it a finished relighting run?")
    rows = []
    for sample in ids:
        image = cv2.imread(str(outputs / f"{sample}_input.png"), cv2.IMREAD_COLOR)
        h, w = image.shape[:2]
        mask = cv2.imread(str(run / "data" / "stage_1" / f"{sample}_mask.png"), cv2.IMREAD_GRAYSCALE)
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST) > 127
        albedo = cv2.resize(cv2.imread(str(outputs / f"{sample}_albedo.png"), cv2.IMREAD_COLOR), (w, h))
        relit = cv2.resize(cv2.imread(str(outputs / f"{sample}_output.png"), cv2.IMREAD_COLOR), (w, h))
        rows.append([_tile(t) for t in (image, _overlay(image, mask), albedo, relit)])
    widths = [max(row[c].shape[1] for row in rows) for c in range(len(COLUMNS))]
    gap = 6
    sheet = np.full((HEADER + len(rows) * (TILE_HEIGHT + gap), sum(widths) + gap * (len(widths) - 1), 3), 255,
                    np.uint8)
    x = 0
    for c, name in enumerate(COLUMNS):
        cv2.putText(sheet, name, (x + 4, HEADER - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (40, 40, 40), 1, cv2.LINE_AA)
        for r, row in enumerate(rows):
            tile = row[c]
            y = HEADER + r * (TILE_HEIGHT + gap)
            sheet[y:y + TILE_HEIGHT, x:x + tile.shape[1]] = tile
        x += widths[c] + gap
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the output folder of a finished `genfab run` of the main job")
    parser.add_argument("--to", type=Path, default=RELIGHTING_GALLERY, help="where the JPEG goes")
    args = parser.parse_args(argv)
    try:
        sheet = relighting_sheet(args.run)
    except FileNotFoundError as exc:
        print(f"gallery: {exc}", file=sys.stderr)
        return 2
    args.to.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.to), sheet, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    print(f"wrote {args.to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
