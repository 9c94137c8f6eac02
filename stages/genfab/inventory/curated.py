"""A SceneJob's curated set as samples (the lab's worldexplorer): a `metadata.json` manifest or inline `samples`,
expanded into one sample per (index, variant) with an existing image, id `{variant}/index_XXXX`.

The expansion itself is the API's pure `expand_samples` (the planner counts with the same code);
this module adds what needs storage: the manifest's content and which images exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from genfab.api.errors import field_errors
from genfab.api.scene_samples import expand_samples, no_jobs_message
from genfab.api.scenejob import CuratedManifest, CuratedSample, SceneInput
from genfab.contract import StageConfig
from genfab.storage.base import Storage, StorageError, StorageLimit, StorageTooLarge

MAX_MANIFEST_BYTES = 16 << 20
"""A curated set's `metadata.json`: 10,000 samples with long prompts fit in a few MB. More is not read
(the operator reads it with every tenant's memory)."""


class CuratedSetError(ValueError):
    """The curated set gives no usable sample list (bad input)."""


@dataclass(frozen=True)
class CuratedInput:
    """Where a curated set is and which of its samples run."""

    root: str
    """The dataset root: image paths are relative to it (the manifest's folder, or `datasetUri`)."""
    manifest: str | None
    """The manifest's key under `root`; None for inline samples."""
    input: SceneInput
    indices: tuple[int, ...] | None
    variants: tuple[str, ...] | None


def curated_input(cfg: StageConfig) -> CuratedInput | None:
    """The stage's curated-set input, or None when it reads no manifest or inline samples (one image,
    a folder of files, or an upstream stage)."""
    raw = cfg.config.get("input")
    if cfg.upstream or not isinstance(raw, dict) or not {"manifest", "samples"} & raw.keys():
        return None
    try:
        inp = SceneInput.model_validate(raw)
    except ValidationError as exc:
        raise CuratedSetError("; ".join(str(e) for e in field_errors(exc, ("input",)))) from None
    picked = cfg.selection.indices, cfg.selection.variants
    if inp.manifest is not None:
        root, _, key = inp.manifest.rstrip("/").rpartition("/")
        return CuratedInput(root, key, inp, *picked)
    return CuratedInput((inp.dataset_uri or "").rstrip("/"), None, inp, *picked)


def read_manifest(storage: Storage, key: str) -> list[CuratedSample]:
    """The manifest's samples; a missing, unreadable or invalid manifest is one line naming it."""
    where = f"input.manifest {storage.uri}/{key}"
    try:
        raw = json.loads(storage.read_at_most(key, MAX_MANIFEST_BYTES, where))
    except StorageLimit:
        raise  # the reader's budget, not the manifest: read again later
    except StorageTooLarge as exc:
        raise CuratedSetError(str(exc)) from None
    except (FileNotFoundError, StorageError) as exc:
        detail = (str(exc).splitlines() or ["missing"])[0].removeprefix(f"{storage.uri.rstrip('/')}/{key}: ")
        raise CuratedSetError(f"{where}: cannot be read ({detail})"
                              ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CuratedSetError(f"{where}: not valid JSON ({exc})") from None
    try:
        return CuratedManifest.model_validate(raw).samples
    except ValidationError as exc:
        problems = field_errors(exc)
        # Field paths and what is wrong, never the values: the manifest is storage content, and this
        # line can end up in a resource's status.
        shown = "; ".join(f"{p.path}: {p.message}" for p in problems[:3])
        shown += f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise CuratedSetError(f"{where}: {shown} (the lab's worldexplorer script's format: "
                              f"{{\"samples\": [{{\"index\", \"prompt\", "
                              "\"photorealistic\": {\"original_path\"}, \"stylized\", \"scaffold\"}]})") from None


@dataclass(frozen=True)
class CuratedJob:
    """One sample of the curated set: its id, its image (relative to the dataset root) and its
    manifest entry (prompts and per-sample fields for the stage)."""

    id: str
    image: str
    sample: CuratedSample


def curated_jobs(cur: CuratedInput, open_fn: Callable[[str], Storage]) -> list[CuratedJob]:
    """Every (index, variant) job of the curated set, sorted by id; none is the seed's clear error."""
    storage = open_fn(cur.root)
    samples = cur.input.samples if cur.manifest is None else read_manifest(storage, cur.manifest)
    assert samples is not None  # SceneInput: exactly one form
    present = {obj.key for obj in storage.list()}
    by_index: dict[int, CuratedSample] = {}
    for position, entry in enumerate(samples):
        index = entry.index if entry.index is not None else position
        if index in by_index:  # two samples would write the same {variant}/index_XXXX folders
            raise CuratedSetError(f"samples[{position}]: index {index} is used by an earlier sample too; each sample "
                                  f"needs its own index (dataset root {storage.uri})")
        by_index[index] = entry
    jobs = expand_samples(samples, indices=cur.indices, variants=cur.variants, exists=present.__contains__)
    if not jobs:
        why = no_jobs_message(samples, indices=cur.indices, variants=cur.variants, exists=present.__contains__)
        raise CuratedSetError(f"{why} (dataset root {storage.uri})")
    return sorted((CuratedJob(j.sample_id, j.image_path, by_index[j.index]) for j in jobs), key=lambda j: j.id)
