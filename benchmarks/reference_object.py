"""reference-object speed: step 7's CV augmentation (CPU) against a straightforward loop.

The stage (`CvAugmentationStage`, the real runtime over file:// storage: read, augment in its worker
pool, write both datasets) against a single-process albumentations loop of the same cascade on the
same files (`cv2.imread`, `augment`, `cv2.imwrite`, the label copied), on synthetic annotated
images. Reported: augmented images/s, the stage's rate per worker against the loop (target >= 1.0),
and how it scales over workers.

    python benchmarks/reference_object.py [--images 64] [--size 1024] [--count 2] [--workers 1,2,4,8,16] [--write]

The Qwen Image Edit and annotation rows need the GPU machines and production-size models; they are
not part of this script yet (see the results file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import cv2
import numpy as np

from genfab.api.reference_object import CvAugmentationConfig
from genfab.inventory import ShardReport, write_report
from genfab.stages.reference_object.augment import augment, build_transform
from genfab.stages.reference_object.cv_stage import CvAugmentationStage
from genfab.stages.runtime.loop import main as run_stage
from genfab.storage import open_storage

ROOT = Path(__file__).resolve().parent.parent


def dataset(folder: Path, images: int, size: int) -> list[str]:
    """`images` smooth random pictures with a label each, under `train/` (the annotated dataset)."""
    rng = np.random.default_rng(0)
    (folder / "train/images").mkdir(parents=True)
    (folder / "train/labels").mkdir(parents=True)
    ids = []
    for i in range(images):
        low = (rng.random((size // 32, size // 32, 3)) * 255).astype(np.uint8)
        image = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
        unit = f"img_{i:04d}"
        cv2.imwrite(str(folder / f"train/images/{unit}.png"), image)
        (folder / f"train/labels/{unit}.txt").write_text("0 0.1 0.1 0.9 0.1 0.5 0.9\n")
        ids.append(unit)
    (folder / "classes.txt").write_text("object\n")
    return ids


def loop(folder: Path, out: Path, ids: list[str], count: int) -> float:
    """The straightforward loop: one process, one image at a time. Returns augmented images/s."""
    transform = build_transform(CvAugmentationConfig(count=count))
    (out / "images").mkdir(parents=True)
    (out / "labels").mkdir(parents=True)
    started = time.perf_counter()
    for n, unit in enumerate(ids):
        rgb = cv2.cvtColor(cv2.imread(str(folder / f"train/images/{unit}.png")), cv2.COLOR_BGR2RGB)
        for k in range(count):
            image, _ = augment(transform, rgb, n * 1000 + k)
            cv2.imwrite(str(out / f"images/{unit}_cv_{k}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            shutil.copyfile(folder / f"train/labels/{unit}.txt", out / f"labels/{unit}_cv_{k}.txt")
    return len(ids) * count / (time.perf_counter() - started)


def stage(root: Path, ids: list[str], count: int, workers: int) -> float:
    """The stage through the real runtime, one shard with `workers` worker processes."""
    run = root / f"run-{workers}"
    shutil.copytree(root / "annotated", run / "06_yolo_dataset")
    write_report(open_storage(f"file://{run}"), ShardReport("annotation", "a" * 64, 0, 1, state="succeeded",
                                                            total=len(ids), succeeded=ids))
    cfg = {"contract": 1, "resource": {"kind": "DatasetJob", "name": "bench"}, "pipeline": "reference-object",
           "stage": "cv-augmentation", "family": "cv", "configHash": "c" * 64, "runUri": f"file://{run}",
           "outputUri": f"file://{run}", "inputUris": [], "shardSize": 1 << 20,
           "upstream": [{"name": "annotation", "configHash": "a" * 64, "outputUri": f"file://{run}/06_yolo_dataset"}],
           "config": {"seed": 1, "cvAugmentation": {"count": count}}}
    (root / "stage.json").write_text(json.dumps(cfg))
    env = {**os.environ, "GENFAB_STAGE_CONFIG": str(root / "stage.json"), "JOB_COMPLETION_INDEX": "0",
           "GENFAB_SHARD_COUNT": "1", "GENFAB_CPU_WORKERS": str(workers), "GENFAB_TERMINATION_LOG": str(root / "t")}
    started = time.perf_counter()
    if run_stage(CvAugmentationStage(), env) != 0:
        raise SystemExit("the stage failed; see its log above")
    return len(ids) * count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--count", type=int, default=2)
    parser.add_argument("--workers", default=",".join(str(w) for w in (1, 2, 4, 8, 16) if w <= (os.cpu_count() or 1)))
    parser.add_argument("--write", action="store_true",
                        help="append the table to benchmarks/results/reference_object.md")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="genfab-ro-bench-"))
    ids = dataset(root / "annotated", args.images, args.size)
    base = loop(root / "annotated", root / "loop", ids, args.count)
    rows = []
    for w in (int(v) for v in args.workers.split(",")):
        rate = stage(root, ids, args.count, w)
        rows.append((w, rate))
        print(f"workers {w}: {rate:.2f} images/s (loop {base:.2f})", flush=True)
    lines = [f"### CV augmentation, {args.images} images of {args.size}x{args.size}, {args.count} copies each",
             "", f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; Python "
             f"{platform.python_version()}, albumentations {version('albumentations')}, opencv "
             f"{version('opencv-python-headless')}.",
             f"Command: `python benchmarks/reference_object.py --images {args.images} --size {args.size} "
             f"--count {args.count} --workers {args.workers}`", "",
             "| workers | loop images/s | stage images/s | stage per worker / loop | scaling vs 1 worker |",
             "| --- | --- | --- | --- | --- |"]
    one = rows[0][1] if rows and rows[0][0] == 1 else None
    for w, rate in rows:
        scaling = f"{rate / one / w:.2f}" if one else "-"
        lines.append(f"| {w} | {base:.2f} | {rate:.2f} | **{rate / w / base:.2f}x** | {scaling} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        with (ROOT / "benchmarks" / "results" / "reference_object.md").open("a") as fh:
            fh.write("\n" + table + "\n")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
