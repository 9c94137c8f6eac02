"""What a model in the model location is, cheaply: the identity the planner hashes.

A model's identity covers the content of its small files (`config.json`, `model_index.json`, the
weight index, tokenizer and scheduler configs: anything up to `SMALL_FILE_BYTES`) and, for each
weight file, its size and a checksum that needs no full read: the store's ETag on S3; on a local
folder (a `file://` location, a mounted volume, a hub cache) the sha256 of a safetensors file's
header (its tensor names, shapes, dtypes and offsets), or of the first and last `EDGE_BYTES` of any
other file. Replacing weights under the same model id changes it; touching files (mtime) does not.

Both executors call this at the edge (the planner stays pure), and so can a stage Pod; it never
imports torch and never reads a whole weight file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from genfab.contract.names import MISSING_MODEL
from genfab.storage import Storage, StorageError, StorageLimit, open_storage
from genfab.storage.base import safe_key

SMALL_FILE_BYTES = 1 << 20
EDGE_BYTES = 1 << 16
MAX_HEADER_BYTES = 100 << 20
"""safetensors headers are JSON, a few MB for the largest models; more is not a safetensors file."""
MAX_MODEL_FILES = 10_000
MAX_CONTENT_READS = 256
MISSING = MISSING_MODEL
"""The identity of a model that is not in the location (the stage will fail or fall back; when the
model appears, the identity changes and the stage runs again)."""
SKIPPED = (".complete", ".gitattributes", ".lock")


class ModelLocationError(RuntimeError):
    """The model location cannot be read (one line naming it)."""


def hub_snapshot(root: Path, model_id: str) -> Path | None:
    """The snapshot folder of `model_id` in a Hugging Face hub cache under `root` (`refs/main`, else the
    newest snapshot), or None."""
    repo = root / ("models--" + model_id.replace("/", "--"))
    if not repo.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        snap = repo / "snapshots" / ref.read_text().strip()
        if snap.is_dir():
            return snap
    snaps = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime)
    return snaps[-1] if snaps else None


def _skipped(rel: str) -> bool:
    return rel.endswith(SKIPPED) or any(part.startswith(".") for part in rel.split("/"))


def _file_digest(path: Path, size: int) -> str:
    """Content of a small file; a safetensors header, or the file's two ends, of a large one."""
    with path.open("rb") as fh:
        if size <= SMALL_FILE_BYTES:
            return hashlib.sha256(fh.read()).hexdigest()
        if path.suffix == ".safetensors":
            length = int.from_bytes(fh.read(8), "little")
            if 0 < length <= min(MAX_HEADER_BYTES, size - 8):
                return "header:" + hashlib.sha256(fh.read(length)).hexdigest()
            fh.seek(0)
        head = fh.read(EDGE_BYTES)
        fh.seek(max(0, size - EDGE_BYTES))
        return "ends:" + hashlib.sha256(head + fh.read(EDGE_BYTES)).hexdigest()


def folder_identity(folder: Path) -> str:
    """The identity of a model folder on this machine (symlinks, as in a hub cache, are followed)."""
    entries: list[tuple[str, int, str]] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if _skipped(rel) or not path.is_file():
            continue
        size = path.stat().st_size
        entries.append((rel, size, _file_digest(path, size)))
    return _digest(entries)


Entry = tuple[int, str | None, float | None, str]
"""A listed file of a model folder: (size, ETag, modified, digest)."""


def storage_entries(storage: Storage, prefix: str, known: Mapping[str, Entry] | None = None) -> dict[str, Entry]:
    """The files of a model folder in object storage (relative name -> entry): small files by content,
    large ones by ETag and size (nothing large is read). A file listed with the size, ETag and time of
    an entry in `known` (the last read) keeps its digest unread: reading an unchanged folder again costs
    its listing only. Bounded: at most `MAX_MODEL_FILES` files listed and `MAX_CONTENT_READS` small files
    read per call, a folder with more to read refused from its listing (a model folder holds tens; a
    tenant's folder of thousands is not a model)."""
    listed = []
    for n, obj in enumerate(storage.list(prefix)):
        if n >= MAX_MODEL_FILES:
            raise ModelLocationError(f"{storage.child(prefix)} holds more than {MAX_MODEL_FILES} files: not a model "
                                     "folder genfab reads")
        rel = obj.key[len(prefix):]
        if not _skipped(rel):
            listed.append((rel, obj))
    entries: dict[str, Entry] = {}
    unread = []
    for rel, obj in listed:
        hit = (known or {}).get(rel)
        if hit is not None and hit[:3] == (obj.size, obj.etag, obj.modified):
            entries[rel] = hit
        elif obj.size <= SMALL_FILE_BYTES:
            unread.append((rel, obj))
        else:
            entries[rel] = (obj.size, obj.etag, obj.modified,
                            f"size-only:{obj.size}" if obj.etag is None else f"etag:{obj.etag}")
    # Refused from the listing, before any read: a folder of thousands costs one listing, not 256 reads (which,
    # on a slow store, ran into the reconcile's time bound first and was retried as a transient fault).
    if len(unread) > MAX_CONTENT_READS:
        raise ModelLocationError(f"{storage.child(prefix)} has more than {MAX_CONTENT_READS} small files "
                                 "to read: not a model folder genfab reads")
    for rel, obj in unread:
        digest = hashlib.sha256(storage.read_at_most(obj.key, SMALL_FILE_BYTES)).hexdigest()
        entries[rel] = (obj.size, obj.etag, obj.modified, digest)
    return {rel: entries[rel] for rel, _ in listed}  # in the listing's order


def entries_identity(entries: Mapping[str, Entry]) -> str:
    return _digest((rel, size, digest) for rel, (size, _, _, digest) in sorted(entries.items()))


def storage_identity(storage: Storage, prefix: str) -> str:
    """The identity of a model folder in object storage (`storage_entries`)."""
    return entries_identity(storage_entries(storage, prefix))


def _digest(entries: Iterable[tuple[str, int, str]]) -> str:
    listed = list(entries)
    if not listed:
        return MISSING
    return hashlib.sha256(json.dumps(listed, separators=(",", ":")).encode()).hexdigest()[:32]


def _local_folder(root: Path, model: str) -> Path:
    """A model's folder under a local location: genfab's `<id>/` layout, else a hub cache's snapshot."""
    folder = root / safe_key(model)
    return folder if folder.is_dir() else hub_snapshot(root, model) or folder


def pipeline_classes(model_ids: Iterable[str], location: str, storage: Storage | None = None) -> dict[str, str]:
    """The diffusers pipeline class (`model_index.json`'s `_class_name`) of each model id whose folder
    in the model location has one (`model_identities`' locations and layouts); models without one, or
    with an unreadable one, are left out. One small read per model: what `StageDecl.model_fit` checks."""
    found: dict[str, str] = {}
    local = location.removeprefix("file://")
    store = (storage or open_storage(location)) if "://" in local else None
    for model in sorted(set(model_ids)):
        try:
            if store is not None:
                raw = store.read_at_most(f"{safe_key(model)}/model_index.json", SMALL_FILE_BYTES)
            else:
                index = _local_folder(Path(local), model) / "model_index.json"
                if not index.is_file() or index.stat().st_size > SMALL_FILE_BYTES:
                    continue
                raw = index.read_bytes()
            name = json.loads(raw).get("_class_name")
        except StorageLimit:
            raise
        except (StorageError, OSError, ValueError, AttributeError):
            continue  # no index (not a diffusers pipeline) or not one genfab can read: nothing to check
        if isinstance(name, str):
            found[model] = name
    return found


def model_identities(model_ids: Iterable[str], location: str, storage: Storage | None = None) -> dict[str, str]:
    """Identity of each model id under the model location `location` (what `GENFAB_MODELS` holds: an
    `s3://` prefix, a `file://` folder, or a local folder, the latter two in genfab's `<id>/` layout
    or a hub cache's). `storage`: the opened `s3://` location (the operator opens it with the
    resource's credentials); None opens it from this process's environment."""
    ids = sorted(set(model_ids))
    if not ids:
        return {}
    local = location.removeprefix("file://")
    found: dict[str, str] = {}
    try:
        if "://" in local:
            store = storage or open_storage(location)
            for model in ids:
                found[model] = storage_identity(store, f"{safe_key(model)}/")
            return found
        root = Path(local)  # a folder that is not there holds no model: each is MISSING, and the stage says so
        for model in ids:
            folder = _local_folder(root, model)
            found[model] = folder_identity(folder) if folder.is_dir() else MISSING
    except StorageLimit:
        raise  # the reader's budget (the operator's): read again later
    except (StorageError, OSError) as exc:
        raise ModelLocationError(f"model location {location}: {str(exc).splitlines()[0] if str(exc) else exc}"
                                 ) from None
    return found

