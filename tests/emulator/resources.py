"""The resources the emulator tier's tests apply in more than one module: a two-node TuningRun, a
relighting DatasetJob with a quality bound (and the fake kubelet's script for it), a tenant's SceneJob
in a namespace-bound cluster."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from tests.emulator.conftest import MODELS, OWN_METHODS
from tests.emulator.kubelet import Behaviour

EXAMPLE_SOURCE = Path(__file__).resolve().parents[2] / "examples" / "data" / "difix"
_names = itertools.count()


def tuning_run(tmp: Path, **spec: Any) -> dict[str, Any]:
    n = next(_names)
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "TuningRun",
            "metadata": {"name": f"difix-{n}", "namespace": f"tune-{n}"},
            "spec": {"trainer": "difix", "dataset": {"dataJsonUri": f"file://{tmp}/exp/difix/data.json"},
                     "runName": "lr2e-5", "output": f"file://{tmp}/exp", "gpusPerNode": 2, "nodes": 2,
                     "models": MODELS, **spec}}


DROPPED = "maskArea 0.6121 above max 0.5"
MEASURED = {"maskArea": 0.4027, "boundaryOnEdge": 0.9012, "facesOutside": 0.0}


def quality_job(tmp: Path, samples: int = 4) -> dict[str, Any]:
    """A relighting DatasetJob over `samples` inputs, two a shard, with a bound on `maskArea`."""
    inputs = tmp / "in"
    inputs.mkdir()
    for i in range(samples):
        (inputs / f"p{i}.png").write_bytes(b"png")
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob",
            "metadata": {"name": "quality", "namespace": "lab-quality"},
            "spec": {"type": "relighting", "output": f"file://{tmp}/out", "shardSize": 2,
                     "relighting": {"input": {"uri": f"file://{inputs}"}, "segmentation": {"backends": ["classical"]},
                                    "degradation": {"softShading": {"normals": "classical"}},
                                    "quality": {"maskArea": {"max": 0.5}}}}}


def quality_script(stage: str, index: int, attempt: int) -> Behaviour:
    """The fake kubelet's script for `quality_job`: the segment stage measures, organize drops one."""
    if stage == "segment":
        return Behaviour(seconds=0.05, figures=MEASURED)
    if stage == "organize" and index == 0:
        return Behaviour(seconds=0.05, fail_samples=1, fail_reason="QualityOutOfRange", fail_message=DROPPED)
    return Behaviour(seconds=0.05)


def tenant_scenejob(root: Path, namespace: str, name: str, output_ns: str) -> dict[str, Any]:
    """A SceneJob of `namespace` reading its own folder under `root`, writing under `output_ns`'s."""
    inputs = root / namespace / "in"
    inputs.mkdir(parents=True, exist_ok=True)
    (inputs / "img_00.png").write_bytes(b"png")
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": name, "namespace": namespace},
            "spec": {"pipeline": "worldexplorer", "input": {"datasetUri": f"file://{inputs}", "samples": [
                {"index": 0, "photorealistic": {"path": "img_00.png"}}]}, "output": f"file://{root}/{output_ns}/out",
                     "worldexplorer": OWN_METHODS, "models": MODELS}}
