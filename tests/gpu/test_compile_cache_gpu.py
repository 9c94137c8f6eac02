"""The compile cache on a real GPU with torch's own `save_cache_artifacts`/`load_cache_artifacts`: a
second process (a second Pod: its own, empty inductor and Triton caches) that loads the first one's
artifacts finds its compiled graph there instead of compiling it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

POD = r'''
import json, sys, time
import torch
from torch._dynamo.utils import counters
from genfab.stages.runtime.compile_cache import CompileCache
from genfab.storage import open_storage

cache = CompileCache.for_shard(open_storage(sys.argv[1]), "toy", {})
cache.load()
model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.GELU(), torch.nn.Linear(512, 256)).cuda()
step = torch.compile(model)
began = time.perf_counter()
step(torch.randn(64, 256, device="cuda"))
torch.cuda.synchronize()
first = time.perf_counter() - began
cache.save()
print(json.dumps({"loaded": cache.loaded, "hits": counters["inductor"]["fxgraph_cache_hit"],
                  "misses": counters["inductor"]["fxgraph_cache_miss"], "first": first, "key": cache.key}))
'''


def pod(tmp_path: Path, name: str) -> dict[str, object]:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / name / "inductor"),
           "TRITON_CACHE_DIR": str(tmp_path / name / "triton")}
    out = subprocess.run([sys.executable, "-c", POD, f"file://{tmp_path / 'run'}"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_second_pod_loads_the_first_ones_compiled_graph(tmp_path: Path) -> None:
    first = pod(tmp_path, "pod-1")
    assert not first["loaded"] and first["misses"] >= 1 and first["hits"] == 0
    stored = tmp_path / "run" / str(first["key"])
    assert stored.is_file() and stored.stat().st_size > 0
    second = pod(tmp_path, "pod-2")
    assert second["loaded"] and second["hits"] >= 1 and second["misses"] == 0
