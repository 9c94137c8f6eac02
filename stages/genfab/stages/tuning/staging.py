"""Data staging: a DiFix `data.json` and every image it references, copied from object storage onto
the training Pod's disk, with the paths rewritten to the local copies.

The export wrote its paths in one of three forms (`paths` in its `meta/generation_config.yaml`):
relative to the experiment root, under a mount prefix (`pathPrefix`, default `/data`), or absolute
on the machine that exported it. Each path becomes a key under the experiment root (the folder
holding `difix/data.json`); a local file that exists is used in place (a data.json written by other
tools for a mounted volume). Files already on disk with the stored size are not copied again, so a
restarted Pod only fetches what it lacks. Sizes are summed before anything is copied: a disk too
small for the data fails at once, naming both numbers.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from genfab.storage import Storage, StorageError

IMAGE_KEYS = ("image", "target_image", "ref_image")
DATA_JSON = "difix/data.json"
HEADROOM = 1.05
"""Free space wanted beyond the data's size (checkpoints and logs go to the same disk)."""


class StagingError(ValueError):
    """The data cannot be staged (a path outside the experiment, a missing file, a full disk)."""


@dataclass(frozen=True)
class PathForm:
    """How the export wrote its paths (`paths`, `pathPrefix`), from its generation config."""

    mode: str = "relative"
    prefix: str = "/data"
    local_root: str | None = None
    """The experiment root as a local path, for `absolute` paths of a file:// export."""


@dataclass
class StagePlan:
    """What to copy: experiment keys by local relative path, and the rewritten data.json."""

    keys: list[str] = field(default_factory=list)
    in_place: dict[str, str] = field(default_factory=dict)
    """Paths used where they are (local files that exist)."""
    data: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)


def experiment_key(path: str, form: PathForm, exists: Callable[[str], bool]) -> str | None:
    """The key under the experiment root a data.json path names; None: a local file used in place."""
    if not path.startswith("/"):
        return _checked(path, path)
    for root in (form.prefix if form.mode == "prefix" else None, form.local_root):
        if root and path.startswith(root.rstrip("/") + "/"):
            return _checked(path[len(root.rstrip("/")) + 1:], path)
    if exists(path):
        return None
    raise StagingError(f"data.json path {path!r} is neither under the export's "
                       f"{'pathPrefix ' + form.prefix if form.mode == 'prefix' else 'root'} nor a file on this "
                       "machine")


def _checked(key: str, path: str) -> str:
    parts = PurePosixPath(key).parts
    if not parts or ".." in parts or key.startswith("/"):
        raise StagingError(f"data.json path {path!r} leaves the experiment folder")
    return key


def plan_staging(data: Mapping[str, Any], form: PathForm, local_root: Path, exists: Callable[[str], bool]
                 ) -> StagePlan:
    """Which keys to fetch and the data.json that points at their local copies. Pure."""
    if not isinstance(data, Mapping) or not isinstance(data.get("train"), Mapping):
        raise StagingError("data.json has no `train` map (Difix3D's format: train and test maps of samples)")
    plan = StagePlan()
    seen: set[str] = set()
    for split in ("train", "test"):
        entries = data.get(split) or {}
        if not isinstance(entries, Mapping):
            raise StagingError(f"data.json `{split}` is not a map of samples")
        out: dict[str, dict[str, str]] = {}
        for sid, entry in entries.items():
            if not isinstance(entry, Mapping) or not all(isinstance(entry.get(k), str) for k in IMAGE_KEYS[:2]):
                raise StagingError(f"data.json {split}.{sid}: needs string `image` and `target_image`")
            local = dict(entry)
            for k in IMAGE_KEYS:
                if k not in entry:
                    continue
                key = experiment_key(str(entry[k]), form, exists)
                if key is None:
                    plan.in_place[str(entry[k])] = str(entry[k])
                    continue
                if key not in seen:
                    seen.add(key)
                    plan.keys.append(key)
                local[k] = str(local_root / key)
            local.setdefault("prompt", "remove degradation")
            out[str(sid)] = local
        plan.data[split] = out
    return plan


def read_form(experiment: Storage) -> PathForm:
    """The export's path form from its `meta/generation_config.yaml` (relative when it has none)."""
    local_root = experiment.uri.removeprefix("file://") if experiment.uri.startswith("file://") else None
    try:
        config = yaml.safe_load(experiment.read_bytes("meta/generation_config.yaml")) or {}
    except (StorageError, yaml.YAMLError):
        return PathForm("relative", local_root=local_root)
    return PathForm(str(config.get("paths", "relative")), str(config.get("pathPrefix", "/data")), local_root)


@dataclass(frozen=True)
class Staged:
    data_json: Path
    files: int
    fetched: int
    bytes_fetched: int
    train: int
    test: int


def stage_data(experiment: Storage, data_json_key: str, target: Path, workers: int = 16) -> Staged:
    """Copy a data.json's images from `experiment` into `target` and write the local data.json."""
    try:
        data = json.loads(experiment.read_bytes(data_json_key))
    except StorageError as exc:
        raise StagingError(f"cannot read {experiment.child(data_json_key)}: {exc}") from None
    except ValueError as exc:
        raise StagingError(f"{experiment.child(data_json_key)} is not JSON: {exc}") from None
    plan = plan_staging(data, read_form(experiment), target, lambda p: Path(p).is_file())
    if not plan.data.get("train"):
        raise StagingError(f"{experiment.child(data_json_key)} has no training samples")
    sizes = _sizes(experiment, plan.keys, workers)
    todo = [k for k in plan.keys if not _complete(target / k, sizes[k])]
    need = sum(sizes[k] for k in todo)
    target.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target).free
    if need * HEADROOM > free:
        raise StagingError(f"staging needs {need / 2**30:.2f} GiB for {len(todo)} files but {target} has "
                           f"{free / 2**30:.2f} GiB free: raise stages.train.ephemeralStorage")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda k: experiment.download_file(k, target / k), todo))
    local = target / DATA_JSON
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(json.dumps(plan.data, indent=1, sort_keys=True))
    return Staged(local, len(plan.keys) + len(plan.in_place), len(todo), need, len(plan.data["train"]),
                  len(plan.data.get("test", {})))


def _sizes(experiment: Storage, keys: list[str], workers: int) -> dict[str, int]:
    """Stored sizes (one listing per folder would also do; a HEAD per file keeps it exact)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = dict(zip(keys, pool.map(experiment.size, keys), strict=True))
    missing = [k for k, s in found.items() if s is None]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise StagingError(f"data.json names {experiment.child(missing[0])}{more}, which does not exist")
    return {k: int(s) for k, s in found.items() if s is not None}


def _complete(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size
