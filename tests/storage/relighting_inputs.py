"""A relighting DatasetJob over the bundled portraits (no weights: the fallback order down to the classical
path), and a folder of them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.helpers import ROOT

PORTRAITS = ROOT / "examples" / "data" / "portraits"


def job(output: str, inputs: Path, **relighting: Any) -> dict[str, Any]:
    # No weights here: the example's fallback order down to the classical path, classical normals named.
    relighting.setdefault("segmentation", {}).setdefault("backends", ["sam3", "sam2", "classical"])
    degradation = relighting.setdefault("degradation", {})
    degradation.setdefault("softShading", {}).setdefault("normals", "classical")
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "relight"},
            "spec": {"type": "relighting", "output": output, "continueOnError": True, "shardSize": 2,
                     "relighting": {"input": {"uri": f"file://{inputs}"}, **relighting}}}


def portraits(tmp_path: Path, names: tuple[str, ...] = ("astronaut", "hopper")) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name in names:
        source = next(PORTRAITS.glob(f"{name}.*"))
        shutil.copy(source, folder / source.name)
    return folder
