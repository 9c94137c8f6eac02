"""DiFix triplet export: genfab's `export` stage against a straightforward PIL loop on the same sources.

The source is the procedural multi-camera source (`genfab.stages.difix.procedural`) at a larger size:
`--scenes` scenes x 4 cameras x `--frames` frames at `--size` (default 8 x 4 x 24 at 512x384, JPEG
ground truth, PNG renders, PNG masks). Both sides export the same triplets (the planner's, nearest
camera, masks checked against 0.01) and write the same four files per sample:

- baseline: one Python loop, per sample `PIL.Image.open` + `save` for the render (PNG), the target and
  the reference (JPEG, quality 95), the masks read with PIL and numpy, `meta.json` written; run in
  this process, and with a `multiprocessing.Pool` over scenes (one process per core);
- genfab: `genfab run` of a difix DatasetJob limited to the export (`onlyStages: [export]`), with
  `--workers 1` (one shard process at a time) and `--workers <cores>`; its seconds are the export
  stage's wall time from `_genfab/summary.json` (process start-up included).

On `file://` and on S3 (a moto server in this process; the source is uploaded there and both sides read
and write through boto3). With `--ply` (CUDA), renders/s of `renders: ply` (gsplat, per frame PLY).

    python benchmarks/difix_export.py [--write] [--ply]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "difix-bench"


def plain_scene(args: tuple[str, str, str, dict[str, str]]) -> tuple[int, int]:
    """The baseline for one scene: (samples written, bytes written)."""
    from genfab.stages.difix.cameras import pose_distance, read_cameras
    from genfab.stages.difix.layouts import GenericLayout, SceneRef
    from genfab.stages.difix.triplets import Selection, plan_scene
    from genfab.storage import S3Settings, open_storage

    src_uri, out_uri, key, env = args
    settings = S3Settings.from_env(env) if env else None
    src, out = open_storage(src_uri, settings), open_storage(out_uri, settings)
    scene = SceneRef(key, f"proc_{key}")
    files = GenericLayout().files(src, scene, None, False)
    cams = read_cameras(src, files)
    triplets, _ = plan_scene(scene.name, cams, files.images, lambda c, f: (c, f) in files.renders, set(),
                             Selection(None, 1, "nearest-camera", None, 0, 0),
                             lambda a, b: pose_distance(cams[a], cams[b]))
    samples = written = 0
    for t in triplets:
        def image(path: str) -> Image.Image:
            img = Image.open(io.BytesIO(src.read_bytes(f"{key}/{path}")))
            img.load()
            return img
        pairs = ((t.target_cam, t.frame), (t.reference_cam, t.reference_frame))
        sid = f"{scene.name}__tcam{t.target_cam}__rccam{t.reference_cam}__tf{t.frame}__rf{t.reference_frame}"
        outputs = []
        try:
            if min(float((np.asarray(image(files.masks[k])) > 127).mean()) for k in pairs) < 0.01:
                continue
            for name, path, fmt in (("image.png", files.renders[(t.target_cam, t.frame)], "PNG"),
                                    ("target_image.jpg", files.images[(t.target_cam, t.frame)], "JPEG"),
                                    ("ref_image.jpg", files.images[(t.reference_cam, t.reference_frame)], "JPEG")):
                buf = io.BytesIO()
                image(path).convert("RGB").save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
                outputs.append((name, buf.getvalue()))
        except OSError:  # the broken frame
            continue
        outputs.append(("meta.json", json.dumps({"sample_id": sid}).encode()))
        for name, data in outputs:
            out.write_bytes(f"samples/{sid}/{name}", data)
            written += len(data)
        samples += 1
    return samples, written


def run_plain(src: str, out: str, scenes: list[str], env: dict[str, str], procs: int) -> tuple[float, int, int]:
    jobs = [(src, f"{out}/p{procs}", key, env) for key in scenes]
    start = time.perf_counter()
    if procs == 1:
        results = [plain_scene(j) for j in jobs]
    else:
        with Pool(procs) as pool:
            results = pool.map(plain_scene, jobs)
    return time.perf_counter() - start, sum(r[0] for r in results), sum(r[1] for r in results)


def run_genfab(src: str, out: str, env: dict[str, str], workers: int, tmp: Path, ply: bool = False
               ) -> tuple[float, int, int]:
    spec = {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "difix-bench"},
            "spec": {"type": "difix", "output": out, "onlyStages": ["export"],
                     "difix": {"sources": [{"name": "proc", "dataset": "generic", "uri": src, "groupBy": "pattern",
                                            "groupPattern": "_(pair\\d+)_", "minMaskFraction": 0.01,
                                            **({"renders": "ply"} if ply else {})}]}}}
    path = tmp / f"job-{workers}-{ply}.yaml"
    path.write_text(yaml.safe_dump(spec))
    cmd = [sys.executable, "-m", "genfab.cli.main", "run", str(path), "--workers", str(workers)]
    result = subprocess.run(cmd, cwd=tmp, env={**os.environ, **env}, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"genfab run failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    from genfab.storage import S3Settings, open_storage

    run = open_storage(out, S3Settings.from_env(env) if env else None)
    stage = next(s for s in json.loads(run.read_bytes("_genfab/summary.json"))["stages"] if s["name"] == "export")
    samples = written = 0
    for obj in run.list("_genfab/difix/export/"):
        if obj.key.endswith("_SUCCESS.json"):
            marker = json.loads(run.read_bytes(obj.key))
            samples += marker["extra"]["params"]["samples"]
            written += marker["extra"]["params"]["bytes"]
    return float(stage["seconds"]), samples, written


def row(label: str, seconds: float, samples: int, written: int, base: float | None) -> str:
    ratio = f"{base / seconds:.2f}x" if base else "1.00x"
    return (f"| {label} | {samples} | {seconds:.2f} | {samples / seconds:.1f} | {written / seconds / 1e6:.1f} | "
            f"{ratio} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", default="512x384")
    ap.add_argument("--ply", action="store_true", help="also renders/s from PLY (needs CUDA)")
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    from genfab.stages.difix.procedural import scene_list, write_source

    cores = len(os.sched_getaffinity(0))
    width, height = (int(v) for v in args.size.split("x"))
    lines = ["| storage | run | samples | seconds | samples/s | MB/s | vs plain loop (1 process) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory(prefix="genfab-difix-bench-") as tmpdir:
        tmp = Path(tmpdir)
        source = write_source(tmp / "source", width, height, ply=args.ply, scenes=args.scenes, frames=args.frames)
        scenes = [name for name, _, _ in scene_list(args.scenes)]
        targets: list[tuple[str, str, str, dict[str, str], Callable[[], None]]] = [
            ("file://", f"file://{source}", f"file://{tmp}/out", {}, lambda: None)]
        if not args.no_s3:
            from moto.server import ThreadedMotoServer

            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            env = {"GENFAB_S3_ENDPOINT": f"http://{host}:{port}", "GENFAB_S3_ADDRESSING_STYLE": "path",
                   "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
            import boto3

            boto3.client("s3", endpoint_url=env["GENFAB_S3_ENDPOINT"], aws_access_key_id="bench",
                         aws_secret_access_key="bench", region_name="us-east-1").create_bucket(Bucket=BUCKET)
            from genfab.storage import S3Settings, open_storage

            s3src = open_storage(f"s3://{BUCKET}/source", S3Settings.from_env(env))
            s3src.write_many((str(p.relative_to(source)), p.read_bytes()) for p in sorted(source.rglob("*"))
                             if p.is_file())
            targets.append(("S3 (moto)", f"s3://{BUCKET}/source", f"s3://{BUCKET}/out", env, server.stop))
        for label, src, out, env, _ in targets:
            base, n, written = run_plain(src, f"{out}/plain", scenes, env, 1)
            lines.append(f"| {label} " + row("plain PIL loop, 1 process", base, n, written, None))
            lines.append(f"| {label} " + row(f"plain PIL loop, {cores} processes",
                                             *run_plain(src, f"{out}/plain", scenes, env, cores), base))
            lines.append(f"| {label} " + row("genfab export, --workers 1",
                                             *run_genfab(src, f"{out}/g1", env, 1, tmp), base))
            lines.append(f"| {label} " + row(f"genfab export, --workers {cores}",
                                             *run_genfab(src, f"{out}/g{cores}", env, cores, tmp), base))
        ply_line = ""
        if args.ply:
            seconds, n, _ = run_genfab(f"file://{source}", f"file://{tmp}/ply", {}, 1, tmp, ply=True)
            ply_line = (f"\n`renders: ply` (each target view rendered from its frame's PLY with gsplat, "
                        f"{width}x{height}, 6000 Gaussians per frame, `--workers 1`): {n} samples in {seconds:.2f} s, "
                        f"{n / seconds:.1f} renders/s including decoding, checking and writing the triplets.\n")
        for _, _, _, _, stop in targets:
            stop()
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    table = "\n".join(lines)
    text = (f"## DiFix export: genfab vs a plain PIL loop\n\n{args.scenes} scenes x 4 cameras x {args.frames} "
            f"frames at {width}x{height} (procedural source; JPEG ground truth, PNG renders and masks), "
            f"{platform.processor() or platform.machine()}, {cores} cores, GPU {gpu}; Python "
            f"{platform.python_version()}, Pillow {version('pillow')}, opencv {version('opencv-python-headless')}, "
            f"boto3 {version('boto3')}.\n\n{table}\n{ply_line}\n"
            f"Command: `python benchmarks/difix_export.py {' '.join(sys.argv[1:])}`\n")
    print(text)
    if args.write:
        results = ROOT / "benchmarks" / "results" / "difix.md"
        results.write_text(text)
        print(f"wrote {results}")


if __name__ == "__main__":
    main()
