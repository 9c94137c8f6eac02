"""A very large input through the whole relighting pipeline: working size (`maxSide`) against full size.

One 6000x6000 JPEG (the bundled astronaut portrait, upscaled) runs through `genfab run` of the
relighting example twice, from this process: once with `relighting.input.maxSide: 8192` (the image
is processed at full size, as every input was before maxSide existed: the baseline) and once with
the default 2048. Each run is a fresh output; reported: wall seconds and the peak resident memory of
the largest process of the run (runner or shard), and the ratios.

    python benchmarks/large_inputs.py            # prints the table
    python benchmarks/large_inputs.py --write    # also writes benchmarks/results/large-inputs.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cv2
import yaml

ROOT = Path(__file__).resolve().parent.parent
SIDE = 6000
MEASURE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def make_input(folder: Path, side: int = SIDE) -> Path:
    portrait = cv2.imread(str(ROOT / "examples" / "data" / "portraits" / "astronaut.png"))
    big = cv2.resize(portrait, (side, side), interpolation=cv2.INTER_CUBIC)
    (folder / "in").mkdir(parents=True)
    cv2.imwrite(str(folder / "in" / "astronaut_big.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return folder / "in"


def run(folder: Path, inputs: Path, max_side: int) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "examples" / "datasetjob-relighting.yaml").read_text())
    doc["spec"]["relighting"]["input"] = {"uri": f"file://{inputs}", "maxSide": max_side}
    out = folder / f"out-{max_side}"
    job = folder / f"job-{max_side}.yaml"
    job.write_text(yaml.safe_dump(doc))
    command = [sys.executable, "-m", "genfab.cli.main", "run", str(job), "--out", f"file://{out}"]
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - started
    code, max_rss_kib = (int(x) for x in result.stdout.split())
    if code != 0:
        raise SystemExit(f"genfab run failed ({code}) with maxSide {max_side}; see {out}/_genfab/logs")
    summary = json.loads((out / "_genfab" / "summary.json").read_text())
    # recombine's composite (the lab's data/ layout): made whatever the quality bounds then keep in outputs/
    output = cv2.imread(str(out / "data" / "stage_3_5" / "astronaut_big_composite.png"))
    if output is None:
        raise SystemExit(f"genfab run made no composite under {out}/data/stage_3_5")
    return {"max_side": max_side, "seconds": seconds, "peak_mib": max_rss_kib / 1024,
            "stages": {s["name"]: s["seconds"] for s in summary["stages"] if s["seconds"] is not None},
            "output": f"{output.shape[1]}x{output.shape[0]}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--side", type=int, default=SIDE, help="the input's side in pixels (CI's smoke run: 1024)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = make_input(folder, args.side)
        full, working = run(folder, inputs, 8192), run(folder, inputs, 2048)
    stages = list(full["stages"])
    lines = [
        f"| run | output | wall s | peak RSS MiB | {' | '.join(f'{s} s' for s in stages)} |",
        "| --- | --- | ---: | ---: |" + " ---: |" * len(stages),
    ]
    for label, r in (("full size (maxSide 8192, baseline)", full), ("working size (maxSide 2048)", working)):
        lines.append(f"| {label} | {r['output']} | {r['seconds']:.1f} | {r['peak_mib']:.0f} | "
                     + " | ".join(f"{r['stages'].get(s, 0):.1f}" for s in stages) + " |")
    lines.append(f"| ratio (baseline / working) | | {full['seconds'] / working['seconds']:.1f}x | "
                 f"{full['peak_mib'] / working['peak_mib']:.1f}x |" + " |" * len(stages))
    table = "\n".join(lines)
    print(table)
    if args.write and args.side == SIDE:
        header = (f"# A 6000x6000 input through the relighting pipeline\n\n"
                  f"`python benchmarks/large_inputs.py --write` on {platform.processor() or platform.machine()}, "
                  f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
                  f"opencv {version('opencv-python-headless')}, numpy {version('numpy')}. "
                  "Classical CPU path (no model weights here: SAM3/SAM2 fall back). "
                  "Both runs in one session on the same machine; one sample, fresh outputs.\n\n")
        (ROOT / "benchmarks" / "results" / "large-inputs.md").write_text(header + table + "\n")


if __name__ == "__main__":
    main()
