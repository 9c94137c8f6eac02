"""What measuring a relighting sample costs: the mask's quality figures (`mask_figures`) beside the
segment stage's own per-sample work on the CPU path (classical segmentation, the cleanup, the split into
the three PNGs and their encoding), and the pair's (`pair_figures`) beside the recombine stage's (its
four PNGs decoded, the composite made and encoded; the stand-in relit person is the input brightened by
a fifth), on the four bundled portraits at their size and scaled to 1024 px. And a difix triplet's
(`triplet_figures`) beside the export stage's per-triplet work (the render PNG and the target and
reference JPEGs decoded, each kept or converted as the export does, the three files written), on
frames of the bundled procedural source scaled to 960x540 and 1920x1080 (noise added: a real frame's
detail).

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

from genfab.stages.difix.files import as_format  # noqa: E402
from genfab.stages.difix.files import decode as decode_frame  # noqa: E402
from genfab.stages.difix.triplet_figures import triplet_figures  # noqa: E402
from genfab.stages.relighting.classical import segment_classical  # noqa: E402
from genfab.stages.relighting.images import decode, encode  # noqa: E402
from genfab.stages.relighting.mask_figures import mask_figures  # noqa: E402
from genfab.stages.relighting.matte import clean_mask, original, person_region, split  # noqa: E402
from genfab.stages.relighting.pair_figures import pair_figures  # noqa: E402
from genfab.stages.relighting.recombine_stage import compute_composite  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "quality_cost.md"


def stage_work(image: np.ndarray) -> object:
    """The segment stage's per-sample work on the CPU path, figures left out."""
    mask, info = segment_classical(image, 0)
    cleaned = clean_mask(mask)
    return {name: encode(pixels) for name, pixels in split(image, cleaned.mask).items()}, cleaned, info["faces"]


def recombine_work(pngs: dict[str, bytes]) -> dict[str, object]:
    """The recombine stage's per-sample work, its pair figures included: the PNGs decoded, the composite."""
    return compute_composite({"id": "x", "composite": "binary", **{k: decode(v) for k, v in pngs.items()}})


def pair_only(pngs: dict[str, bytes]) -> object:
    fg, bg, mask = decode(pngs["foreground"]), decode(pngs["background"]), decode(pngs["mask"])
    region = person_region(mask)
    out = decode(recombine_work(pngs)["files"]["x_composite.png"])  # type: ignore[index]
    picture = original(fg, bg, region)[..., :3]
    return lambda: pair_figures(picture, out, region)


FRAME_SIZES = ((960, 540), (1920, 1080))
DIFIX_FRAMES = ROOT / "examples" / "data" / "difix" / "pair00_hug"


def frame_files(size: tuple[int, int]) -> dict[str, bytes]:
    """A triplet's files at `size`: the render (PNG), the target and the reference (JPEG, quality 95)."""
    rng = np.random.default_rng(0)
    files = {}
    for role, key, ext in (("render", "renders/16/000001.png", ".png"), ("target", "images/16/000001.jpg", ".jpg"),
                           ("reference", "images/28/000001.jpg", ".jpg")):
        found = next(iter(sorted((DIFIX_FRAMES / key).parent.glob("000001.*"))))
        image = cv2.resize(cv2.imread(str(found), cv2.IMREAD_COLOR), size, interpolation=cv2.INTER_CUBIC)
        image = np.clip(image.astype(np.int16) + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)
        files[role] = cv2.imencode(ext, image, [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == ".jpg" else [])[1].tobytes()
    return files


def export_work(files: dict[str, bytes], folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The export's per-triplet work without the figures: decode, keep or convert, write."""
    pixels = {role: decode_frame(data, role) for role, data in files.items()}
    for role, data in files.items():
        out, _ = as_format(data, pixels[role], "png" if role == "render" else "jpg")
        (folder / role).write_bytes(out)
    return pixels["render"], pixels["target"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, str, float, float]] = []
    pairs: list[tuple[str, str, float, float]] = []
    for path in sorted((ROOT / "examples" / "data" / "portraits").iterdir()):
        original = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if original is None:
            continue
        scale = 1024 / max(original.shape[:2])
        for label, image in ((f"{original.shape[1]}x{original.shape[0]}", original),
                             ("1024 px", cv2.resize(original, None, fx=scale, fy=scale,
                                                    interpolation=cv2.INTER_CUBIC))):
            pngs, cleaned, faces = stage_work(image)  # type: ignore[misc]
            work = best(lambda image=image: stage_work(image), args.repeat)  # type: ignore[misc]
            figures = best(lambda image=image, cleaned=cleaned, faces=faces: mask_figures(image, cleaned, faces),  # type: ignore[misc]
                           args.repeat)
            rows.append((path.stem, label, work, figures))
            pngs = {**pngs, "degraded": encode(cv2.convertScaleAbs(image, alpha=1.2))}
            recombine = best(lambda pngs=pngs: recombine_work(pngs), args.repeat)  # type: ignore[misc]
            pair = best(pair_only(pngs), args.repeat)  # type: ignore[arg-type]
            pairs.append((path.stem, label, recombine - pair, pair))
            print(f"{path.stem:10} {label:>9}  segment {work * 1000:8.1f} ms  mask figures {figures * 1000:7.1f} ms "
                  f"({figures / (work + figures):6.1%})  recombine {recombine * 1000:7.1f} ms  pair figures "
                  f"{pair * 1000:6.1f} ms ({pair / recombine:6.1%})")
    triplets: list[tuple[str, float, float]] = []
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        for size in FRAME_SIZES:
            files = frame_files(size)
            render, target = export_work(files, Path(tmp))
            work = best(lambda files=files: export_work(files, Path(tmp)), args.repeat)  # type: ignore[misc]
            figures = best(lambda r=render, t=target: triplet_figures(r, t, 10.0), args.repeat)  # type: ignore[misc]
            triplets.append((f"{size[0]}x{size[1]}", work, figures))
            print(f"difix triplet {size[0]}x{size[1]}  export {work * 1000:7.1f} ms  figures {figures * 1000:6.1f} ms "
                  f"({figures / (work + figures):6.1%})")
    total_work = sum(r[2] for r in rows)
    total_fig = sum(r[3] for r in rows)
    pair_work, pair_fig = sum(r[2] for r in pairs), sum(r[3] for r in pairs)
    print(f"all: mask figures are {total_fig / (total_work + total_fig):.1%} of segment's per-sample time, pair "
          f"figures {pair_fig / (pair_work + pair_fig):.1%} of recombine's")
    if args.write:
        lines = ["# The relighting quality figures: their cost beside the stage's own work", "",
                 "- command: `python benchmarks/quality_cost.py --write`",
                 f"- machine: {platform.machine()}, {platform.processor() or '?'}, Python {platform.python_version()}, "
                 f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} OpenCV threads",
                 "- stage: the CPU path's per-sample work (classical segmentation, cleanup, split, PNG encoding); "
                 "figures: `mask_figures` (all of them; `facesOutside` reads the classical backend's own face search, "
                 "as the stage does); best of "
                 f"{args.repeat} runs each, in one process", "",
                 "## segment: the mask's figures", "",
                 "| portrait | size | stage ms | figures ms | figures' share |", "| --- | --- | ---: | ---: | ---: |"]
        lines += [f"| {name} | {label} | {w * 1000:.1f} | {f * 1000:.1f} | {f / (w + f):.1%} |"
                  for name, label, w, f in rows]
        lines += ["", f"All together the mask's figures are {total_fig / (total_work + total_fig):.1%} of the segment "
                  "stage's per-sample time (the bound: 5 %).", "",
                  "## recombine: the pair's figures", "",
                  "The recombine stage's per-sample work is small (four PNGs decoded, one composite encoded), so the "
                  "pair's figures are a larger share of it; beside the pipeline's per-sample time (segment's alone "
                  "above) they are the last column.", "",
                  "| portrait | size | recombine ms | figures ms | share of recombine | share of segment + recombine |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {name} | {label} | {w * 1000:.1f} | {f * 1000:.1f} | {f / (w + f):.1%} | "
                  f"{f / (w + f + seg[2] + seg[3]):.1%} |"
                  for (name, label, w, f), seg in zip(pairs, rows, strict=True)]
        lines += ["", f"All together the pair's figures are {pair_fig / (pair_work + pair_fig):.1%} of the recombine "
                  f"stage's per-sample time and {pair_fig / (pair_work + pair_fig + total_work + total_fig):.1%} of "
                  "segment's and recombine's together."]
        lines += ["", "## difix export: a triplet's figures", "",
                  "| frames | export ms | figures ms | figures' share |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {label} | {w * 1000:.1f} | {f * 1000:.1f} | {f / (w + f):.1%} |" for label, w, f in triplets]
        RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
