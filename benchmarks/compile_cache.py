"""What the compile cache saves a Pod: the first edit of a stage Pod (Qwen-Image-Edit at production size,
random bf16 weights, `editRuntime` `compile: blocks`), once in a Pod that compiles from scratch and once
in a Pod that first loads the artifacts the other stored (genfab.stages.runtime.compile_cache), each in
its own process with its own empty inductor and Triton caches, as two Pods on two machines have.

Per Pod: the first 2-step edit (compilation included), a second one (compiled), their difference (what
compilation costs that Pod), and the artifacts' size. Needs CUDA.

    python benchmarks/compile_cache.py --steps 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POD = r'''
import json, sys, time
import torch
sys.path.insert(0, ".")
from benchmarks.reference_object import edit_inputs, random_edit_pipeline
from genfab.api.reference_object import EditRuntime
from genfab.stages.reference_object import edit_speed
from genfab.stages.runtime.compile_cache import CompileCache
from genfab.storage import open_storage

steps = int(sys.argv[2])
device = torch.device("cuda")
began = time.perf_counter()
pipe = random_edit_pipeline(device)
cache = CompileCache.for_shard(open_storage(sys.argv[1]), "scenes", {})
cache.load()
edit_speed.apply(pipe.transformer, EditRuntime(), device)
inputs = edit_inputs(device)
setup = time.perf_counter() - began

def edit():
    edit_speed.reset(pipe.transformer)
    torch.cuda.synchronize()
    began = time.perf_counter()
    with torch.inference_mode():
        pipe(**inputs, num_inference_steps=steps, generator=torch.Generator("cpu").manual_seed(7), output_type="latent")
    torch.cuda.synchronize()
    return time.perf_counter() - began

first, second = edit(), edit()
began = time.perf_counter()
cache.save()
saved = time.perf_counter() - began
print(json.dumps({"loaded": cache.loaded, "setup": setup, "first": first, "second": second, "save": saved,
                  "key": cache.key}))
'''


def pod(work: Path, name: str, steps: int) -> dict[str, float | bool | str]:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(work / name / "inductor"),
           "TRITON_CACHE_DIR": str(work / name / "triton")}
    out = subprocess.run([sys.executable, "-c", POD, f"file://{work / 'run'}", str(steps)], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"{name} failed:\n{out.stderr[-4000:]}")
    row: dict[str, float | bool | str] = json.loads(out.stdout.strip().splitlines()[-1])
    print(name, row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    import torch

    work = Path(tempfile.mkdtemp(prefix="genfab-compile-cache-"))
    started = time.perf_counter()
    cold, warm = pod(work, "pod-1", args.steps), pod(work, "pod-2", args.steps)
    size = (work / "run" / str(cold["key"])).stat().st_size / 2**20
    lines = ["| Pod | artifacts | first edit s | second edit s | compilation s (first - second) | stored s |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for name, r in (("the first (compiles)", cold), ("a later one (loads the first's artifacts)", warm)):
        lines.append(f"| {name} | {'loaded' if r['loaded'] else 'stored'} | {float(r['first']):.1f} | "
                     f"{float(r['second']):.1f} | **{float(r['first']) - float(r['second']):.1f}** | "
                     f"{float(r['save']):.1f} |")
    lines += ["", f"Artifacts {size:.1f} MiB; {args.steps}-step 1024² edits, `compile: blocks`; "
              f"{torch.cuda.get_device_name()}, torch {torch.__version__}; "
              f"{time.perf_counter() - started:.0f} s in all; command: python {' '.join(sys.argv)}"]
    print("\n".join(["", *lines]))


if __name__ == "__main__":
    main()
