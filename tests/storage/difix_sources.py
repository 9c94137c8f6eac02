"""The difix DatasetJob over the bundled procedural source, and that source rearranged as HI4D publishes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import ROOT

SOURCE = ROOT / "examples" / "data" / "difix"


def job(output: str, source: str, *, name: str = "difix", paths: str = "absolute", fields: dict[str, Any] | None = None,
        **difix: Any) -> dict[str, Any]:
    spec_source = {"name": "proc", "dataset": "generic", "uri": source, "groupBy": "pattern",
                   "groupPattern": "_(pair\\d+)_", "minMaskFraction": 0.01, **(fields or {})}
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": name},
            "spec": {"type": "difix", "output": output,
                     "difix": {"sources": [spec_source], "split": {"trainRatio": 0.6, "seed": 42}, "paths": paths,
                               **difix}}}


def hi4d_source(tmp_path: Path) -> tuple[Path, Path]:
    """The bundled pair00_dance rearranged as HI4D publishes it (`pair00/dance00/`, `rgb_cameras.npz`,
    `seg/img_seg_mask/<cam>/all/`), with its renders in a separate folder by scene name."""
    import numpy as np

    scene, root, renders = SOURCE / "pair00_dance", tmp_path / "hi4d", tmp_path / "renders"
    action = root / "pair00" / "dance00"
    cams = json.loads((scene / "cameras.json").read_text())
    ids = sorted(cams, key=int)
    (action / "cameras").mkdir(parents=True)
    with (action / "cameras" / "rgb_cameras.npz").open("wb") as fh:
        np.savez(fh, ids=np.array([int(i) for i in ids]), intrinsics=np.array([cams[i]["K"] for i in ids]),
                 extrinsics=np.array([np.array(cams[i]["cam_T_world"])[:3] for i in ids]),
                 dist_coeffs=np.zeros((len(ids), 5)))
    for path in scene.rglob("*"):
        rel = path.relative_to(scene)
        if not path.is_file() or rel.parts[0] == "cameras.json":
            continue
        if rel.parts[0] == "masks":
            dest = action / "seg" / "img_seg_mask" / rel.parts[1] / "all" / rel.parts[2]
        elif rel.parts[0] == "renders":
            dest = renders / "hi4d_pair00_dance" / Path(*rel.parts[1:])
        else:
            dest = action / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(path.read_bytes())
    return root, renders
