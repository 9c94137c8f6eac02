"""The pictures of real outputs in the docs, made from a run's output folder (nothing drawn by hand),
for each pipeline whose example makes them on a CPU:

    genfab run examples/datasetjob-relighting.yaml --out file://./genfab-runs/gallery
    python scripts/gallery.py relighting genfab-runs/gallery   # docs/pipelines/images/relighting-main-job.jpg
    genfab run examples/datasetjob-difix-local.yaml --out file://./genfab-runs/difix-gallery
    python scripts/gallery.py difix genfab-runs/difix-gallery  # docs/pipelines/images/difix-procedural.jpg

relighting: a row per sample, the input, stage 1's person mask over it (green, the rest dimmed), the
albedo and the relit output. difix: the first samples of each split, render | target | reference.
The storage tests run those examples and hold the committed pictures to what they make, so the docs
show what genfab makes today."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RELIGHTING_GALLERY = ROOT / "docs" / "pipelines" / "images" / "relighting-main-job.jpg"
DIFIX_GALLERY = ROOT / "docs" / "pipelines" / "images" / "difix-procedural.jpg"
TILE_HEIGHT = 240
JPEG_QUALITY = 88
HEADER = 28
RELIGHTING_COLUMNS = ("input", "person mask (stage 1)", "albedo (stage 2)", "output (relit)")
DIFIX_COLUMNS = ("render (image.png)", "target (target_image)", "reference (ref_image)")


def _tile(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * TILE_HEIGHT / h)), TILE_HEIGHT), interpolation=cv2.INTER_AREA)


def _overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = image.astype(np.float32)
    out[~mask] *= 0.35
    out[mask] = out[mask] * 0.6 + np.array([0.0, 255.0, 0.0], np.float32) * 0.4
    return out.astype(np.uint8)


def _sheet(columns: tuple[str, ...], rows: list[list[np.ndarray]], labels: list[str] | None = None) -> np.ndarray:
    """Tiles in a grid under column titles; `labels`: a line over each row (its sample, group, split)."""
    tiles = [[_tile(t) for t in row] for row in rows]
    widths = [max(row[c].shape[1] for row in tiles) for c in range(len(columns))]
    gap, label_h = 6, (22 if labels else 0)
    step = TILE_HEIGHT + gap + label_h
    sheet = np.full((HEADER + len(tiles) * step, sum(widths) + gap * (len(widths) - 1), 3), 255, np.uint8)
    for r, label in enumerate(labels or []):
        cv2.putText(sheet, label, (4, HEADER + r * step + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (60, 60, 60), 1,
                    cv2.LINE_AA)
    x = 0
    for c, name in enumerate(columns):
        cv2.putText(sheet, name, (x + 4, HEADER - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (40, 40, 40), 1, cv2.LINE_AA)
        for r, row in enumerate(tiles):
            tile = row[c]
            y = HEADER + r * step + label_h
            sheet[y:y + TILE_HEIGHT, x:x + tile.shape[1]] = tile
        x += widths[c] + gap
    return sheet


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path} is missing or not an image")
    return image


def relighting_sheet(run: Path) -> np.ndarray:
    """The gallery of a finished relighting run (BGR): one row per sample of `data/outputs/`."""
    outputs = run / "data" / "outputs"
    ids = sorted(p.name.removesuffix("_output.png") for p in outputs.glob("*_output.png"))
    if not ids:
        raise FileNotFoundError(f"no data/outputs/*_output.png under {run}: is it a finished relighting run?")
    rows = []
    for sample in ids:
        image = _read(outputs / f"{sample}_input.png")
        h, w = image.shape[:2]
        mask = cv2.imread(str(run / "data" / "stage_1" / f"{sample}_mask.png"), cv2.IMREAD_GRAYSCALE)
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST) > 127
        albedo = cv2.resize(_read(outputs / f"{sample}_albedo.png"), (w, h))
        relit = cv2.resize(_read(outputs / f"{sample}_output.png"), (w, h))
        rows.append([image, _overlay(image, mask), albedo, relit])
    return _sheet(RELIGHTING_COLUMNS, rows)


DIFIX_PER_SPLIT = 2


def difix_sheet(run: Path) -> np.ndarray:
    """The gallery of a finished difix export (BGR): the first samples of each split, a row each:
    the imperfect render, the target and the reference view, labelled with the sample's scene, group and
    split (what DiFix trains on: render -> target, given the reference)."""
    rows, labels = [], []
    for split in ("train", "test"):
        manifest = run / "manifests" / f"split_{split}.jsonl"
        if not manifest.is_file():
            raise FileNotFoundError(f"no {manifest.relative_to(run)} under {run}: is it a finished difix run?")
        for line in manifest.read_text().splitlines()[:DIFIX_PER_SPLIT]:
            meta = json.loads(line)
            rows.append([_read(run / meta[k]) for k in ("image_path", "target_image_path", "ref_image_path")])
            labels.append(f"{meta['scene_name']}  camera {meta['target_cam_id']} (reference {meta['reference_cam_id']})"
                          f"  frame {meta['target_fname']}  group {meta['group_id']}  {split}")
    return _sheet(DIFIX_COLUMNS, rows, labels)


def stale(sheet: np.ndarray, picture: Path, pipeline: str) -> str | None:
    """Why the committed `picture` is not what `sheet` shows (JPEG's loss and a few pixels of another
    CPU's float rounding allowed), or None."""
    shown = cv2.imread(str(picture), cv2.IMREAD_COLOR)
    fix = f"run the example and `python scripts/gallery.py {pipeline} OUTPUT`"
    if shown is None or shown.shape != sheet.shape:
        return f"{picture.name} is stale ({'missing' if shown is None else f'{shown.shape} vs {sheet.shape}'}): {fix}"
    difference = float(np.abs(shown.astype(np.float32) - sheet.astype(np.float32)).mean())
    return f"{picture.name} is stale (mean difference {difference:.1f}): {fix}" if difference >= 3.0 else None


GALLERIES = {"relighting": (relighting_sheet, RELIGHTING_GALLERY), "difix": (difix_sheet, DIFIX_GALLERY)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", choices=sorted(GALLERIES), help="which pipeline's run it is")
    parser.add_argument("run", type=Path, help="the output folder of a finished `genfab run` of its example")
    parser.add_argument("--to", type=Path, default=None, help="where the JPEG goes (default: the docs' picture)")
    args = parser.parse_args(argv)
    make, default = GALLERIES[args.pipeline]
    try:
        sheet = make(args.run)
    except FileNotFoundError as exc:
        print(f"gallery: {exc}", file=sys.stderr)
        return 2
    target = args.to or default
    target.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(target), sheet, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
