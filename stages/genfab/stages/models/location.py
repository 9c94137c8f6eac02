"""Where a stage finds model weights: `GENFAB_MODELS` (set by the executors from `spec.models`).

- an object-storage URI (`s3://bucket/models`, `file://...`): one folder per model id, copied once
  per shard into local scratch space;
- a local directory (a mounted PVC, or a Hugging Face hub cache): `<dir>/<model id>/` or the hub
  layout `<dir>/models--org--name/snapshots/<revision>/`.

Nothing is downloaded from a hub at run time; a model that is not there raises `ModelUnavailable`
naming where it looked, and stages with a fallback (relighting's classical path) use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from genfab.contract.names import ENV_MODELS
from genfab.inventory.model_identity import hub_snapshot
from genfab.storage import open_storage
from genfab.storage.base import safe_key
from genfab.storage.factory import file_roots_from_env
from genfab.storage.local import OUTSIDE, inside


class ModelUnavailable(RuntimeError):
    """The model is not in the configured model location (or none is configured)."""


MARKERS = ("config.json", "model_index.json", "config.yaml")
"""A local folder is a model when it has one of these: transformers' and diffusers' configs, or the
`config.yaml` of research checkpoints (SEVA's hub repository)."""


def resolve_model(model_id: str, cache_dir: Path, env: Mapping[str, str] | None = None,
                  markers: tuple[str, ...] = MARKERS) -> Path:
    """A local directory holding `model_id` (a `from_pretrained` folder; a local folder counts when it
    has one of `markers`, e.g. a research checkpoint's file name)."""
    env = os.environ if env is None else env
    location = env.get(ENV_MODELS, "")
    key = safe_key(model_id)
    if not location:
        raise ModelUnavailable(f"model {model_id!r}: no model location is configured "
                               f"(set spec.models, which sets {ENV_MODELS})")
    shared = location.startswith("file://")
    if shared:  # a folder on this machine (a laptop, a mounted volume): used in place; copying a 33 GB
        location = location.removeprefix("file://")  # pipeline per shard helps nobody
    if "://" in location:
        storage = open_storage(location)
        target = cache_dir / key
        if not (target / ".complete").exists():
            if not storage.download_prefix(f"{key}/", target):
                raise ModelUnavailable(f"model {model_id!r}: nothing under {storage.child(key)}/; "
                                       f"{fill_hint(model_id, storage.child(key))}")
            (target / ".complete").touch()
        return target
    root = Path(location)
    if any((root / key / marker).is_file() for marker in markers):
        return _inside_roots(root / key, model_id) if shared else root / key
    snap = hub_snapshot(root, model_id)
    if snap is not None:
        return _inside_roots(snap, model_id) if shared else snap
    hub = root / ("models--" + model_id.replace("/", "--"))
    raise ModelUnavailable(f"model {model_id!r}: neither {root / key}/ nor a hub cache entry {hub} exists; "
                           f"{fill_hint(model_id, root / key)}")


def _inside_roots(folder: Path, model_id: str) -> Path:
    """A `file://` model folder on a shared volume stays in the namespace's folders (`GENFAB_FILE_ROOTS`,
    set on stage Pods where the cluster lists `storage.filePrefixes`), symbolic links resolved. Symbolic
    links inside it (a hub cache's snapshots point at its blobs) must stay inside too."""
    roots = file_roots_from_env()
    if roots is None:
        return folder
    real = [os.path.realpath(r) for r in roots]
    for path in (folder, *folder.rglob("*")):
        if not any(inside(os.path.realpath(path), r) for r in real):
            raise ModelUnavailable(f"model {model_id!r}: {path} {OUTSIDE}")
    return folder


def fill_hint(model_id: str, folder: Path | str) -> str:
    """How to put a model where genfab looks for it (nothing is downloaded at run time)."""
    return (f"fill it with `hf download {model_id} --local-dir {folder}` on a machine with network access "
            f"(then copy it to the model location), or for tiny random test weights run "
            f"`python scripts/tiny_models.py <model location>`")
