"""The lab's difix trainer adapter, pure: `difix/data.json` for Difix3D's `train_difix.py` (a `train` and a
`test` map, each entry `image`, `target_image`, `ref_image`, `prompt`), with the image paths in the
form the trainer will open them (`paths`: absolute, prefix or relative)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

PathMode = Literal["absolute", "prefix", "relative"]
KEYS = (("image", "image_path"), ("target_image", "target_image_path"), ("ref_image", "ref_image_path"))
"""data.json's keys and the meta.json keys they come from."""


def trainer_path(relative: str, mode: PathMode, prefix: str, local_root: str | None) -> str:
    """A path inside the experiment as the trainer opens it."""
    if mode == "relative":
        return relative
    if mode == "prefix":
        return f"{prefix.rstrip('/')}/{relative}"
    if local_root is None:
        raise ValueError("paths: absolute needs a file:// output (the trainer opens local paths); use prefix "
                         "with the mount path training Pods see")
    return f"{local_root.rstrip('/')}/{relative}"


def data_json(metas: Mapping[str, Mapping[str, Any]], train: Iterable[str], test: Iterable[str], prompt: str,
              mode: PathMode, prefix: str, local_root: str | None) -> dict[str, dict[str, dict[str, str]]]:
    """`{"train": {sample_id: entry}, "test": {...}}` from the samples' meta.json, in id order."""
    def entry(sid: str) -> dict[str, str]:
        m = metas[sid]
        return {**{key: trainer_path(m[source], mode, prefix, local_root) for key, source in KEYS},
                "prompt": prompt}
    return {"train": {sid: entry(sid) for sid in sorted(train)}, "test": {sid: entry(sid) for sid in sorted(test)}}
