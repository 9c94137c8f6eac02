"""A stage's sample list, made once and read by slices: the sample manifest.

Listing a stage's samples (an input folder of a million images, or the samples a 10,000-shard upstream
stage committed, from its 10,000 reports) is done once, where the work belongs: by the local runner in
its own process, or on a cluster by a one-Pod inventory Job of the data plane (`genfab.stages.runtime.
inventory`) when the listing is too big for a reconcile. The result is written into the run folder:

    _genfab/samples/{stage}/{hash10}/manifest.json     count, part size, each part's count and first/last id
    _genfab/samples/{stage}/{hash10}/part-00000.json   [[id, source], ...] of samples 0..part size - 1, sorted

The operator reads `manifest.json` alone (bounded: `MAX_HEADER_BYTES`) to size the stage's Job; each shard
reads only the parts its slice falls in (`read_slice`), instead of every shard listing the input again.
Everything read back is checked (ids, sources, counts, order): the run folder is the tenant's to write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genfab.contract.names import SAMPLES_DIR
from genfab.contract.paths import SAMPLE_ID_RE
from genfab.storage.base import Storage, StorageError, StorageTooLarge

PART_SAMPLES = 10_000
"""Samples per part (more when a list would need more than `MAX_PARTS` parts)."""
MAX_PARTS = 1_000
MAX_SAMPLES = 100_000_000
MAX_HEADER_BYTES = 1 << 20
MAX_PART_BYTES = 256 << 20
MAX_SOURCE = 1024


class InvalidManifest(ValueError):
    """The manifest is missing, unreadable or does not say what a manifest genfab wrote says."""


class ManifestPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(max_length=64, pattern=r"^part-\d{5}\.json$")
    count: int = Field(ge=1)
    first: str = Field(max_length=512)
    last: str = Field(max_length=512)


class SampleManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: str = Field(max_length=64)
    config_hash: str = Field(max_length=64)
    count: int = Field(ge=0, le=MAX_SAMPLES)
    part_size: int = Field(ge=1)
    parts: list[ManifestPart] = Field(max_length=MAX_PARTS)


def manifest_prefix(stage: str, config_hash: str) -> str:
    return f"{SAMPLES_DIR}/{stage}/{config_hash[:10]}/"


def part_size(count: int) -> int:
    return max(PART_SAMPLES, -(-count // MAX_PARTS))


def write_manifest(run: Storage, stage: str, config_hash: str, samples: Sequence[tuple[str, str | None]]
                   ) -> SampleManifest:
    """Write the sorted `(id, source)` list of a stage; the header last, so a reader that finds it finds
    every part it names."""
    if len(samples) > MAX_SAMPLES:
        raise InvalidManifest(f"{len(samples)} samples: a stage has at most {MAX_SAMPLES}")
    prefix, size = manifest_prefix(stage, config_hash), part_size(len(samples))
    parts = []
    for n, start in enumerate(range(0, len(samples), size)):
        chunk = samples[start:start + size]
        key = f"part-{n:05d}.json"
        run.write_bytes(prefix + key, json.dumps([[i, s] for i, s in chunk], separators=(",", ":")).encode())
        parts.append(ManifestPart(key=key, count=len(chunk), first=chunk[0][0], last=chunk[-1][0]))
    manifest = SampleManifest(stage=stage, config_hash=config_hash, count=len(samples), part_size=size, parts=parts)
    run.write_bytes(prefix + "manifest.json", manifest.model_dump_json().encode())
    return manifest


def clear_manifest(run: Storage, stage: str, config_hash: str) -> None:
    run.delete_prefix(manifest_prefix(stage, config_hash))


def read_manifest(run: Storage, stage: str, config_hash: str) -> SampleManifest:
    """The manifest's header, checked; InvalidManifest (one line) when it is missing or wrong."""
    where = run.child(manifest_prefix(stage, config_hash) + "manifest.json")
    try:
        raw = run.read_at_most(manifest_prefix(stage, config_hash) + "manifest.json", MAX_HEADER_BYTES, "manifest")
        manifest = SampleManifest.model_validate_json(raw)
    except StorageTooLarge:
        raise InvalidManifest(f"sample manifest {where} is larger than {MAX_HEADER_BYTES} bytes") from None
    except StorageError as exc:
        if str(exc).startswith("not found"):
            raise InvalidManifest(f"sample manifest {where} does not exist") from None
        raise
    except ValidationError as exc:
        raise InvalidManifest(f"sample manifest {where} is not one genfab wrote: "
                              f"{str(exc).splitlines()[0]}") from None
    if (manifest.stage, manifest.config_hash) != (stage, config_hash):
        raise InvalidManifest(f"sample manifest {where} is of stage {manifest.stage!r} at {manifest.config_hash[:10]}")
    counts = [p.count for p in manifest.parts]
    if sum(counts) != manifest.count or any(c != manifest.part_size for c in counts[:-1]) or \
            [p.key for p in manifest.parts] != [f"part-{n:05d}.json" for n in range(len(counts))]:
        raise InvalidManifest(f"sample manifest {where}: its parts do not add up to its {manifest.count} samples")
    return manifest


def read_slice(run: Storage, manifest: SampleManifest, start: int, stop: int) -> list[tuple[str, str | None]]:
    """Samples `start` to `stop` (exclusive) of the list, reading only the parts they fall in."""
    if not 0 <= start <= stop <= manifest.count:
        raise InvalidManifest(f"samples {start}..{stop} are outside the manifest's {manifest.count}")
    out: list[tuple[str, str | None]] = []
    size = manifest.part_size
    for n in range(start // size, -(-stop // size)):
        rows = _read_part(run, manifest, manifest.parts[n])
        lo, hi = max(start - n * size, 0), min(stop - n * size, len(rows))
        out += rows[lo:hi]
    return out


def _read_part(run: Storage, manifest: SampleManifest, part: ManifestPart) -> list[tuple[str, str | None]]:
    key = manifest_prefix(manifest.stage, manifest.config_hash) + part.key
    where = run.child(key)
    try:
        rows = json.loads(run.read_at_most(key, MAX_PART_BYTES, "sample manifest part"))
    except (StorageTooLarge, ValueError) as exc:
        raise InvalidManifest(f"sample manifest part {where}: {str(exc).splitlines()[0]}") from None
    except RecursionError:  # `[[[[...` 60,000 deep: not a list of samples
        raise InvalidManifest(f"sample manifest part {where}: nested too deep to be a list of samples") from None
    except StorageError as exc:
        if str(exc).startswith("not found"):
            raise InvalidManifest(f"sample manifest part {where} does not exist") from None
        raise
    if not isinstance(rows, list) or len(rows) != part.count:
        raise InvalidManifest(f"sample manifest part {where} does not hold its {part.count} samples")
    out: list[tuple[str, str | None]] = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 2 and isinstance(row[0], str) and _safe_id(row[0])
                and (row[1] is None or (isinstance(row[1], str) and _safe_source(row[1])))):
            raise InvalidManifest(f"sample manifest part {where}: {str(row)[:80]!r} is not a sample")
        if out and row[0] <= out[-1][0]:
            raise InvalidManifest(f"sample manifest part {where}: ids are not sorted at {row[0]!r}")
        out.append((row[0], row[1]))
    if (out[0][0], out[-1][0]) != (part.first, part.last):
        raise InvalidManifest(f"sample manifest part {where} does not start and end where the manifest says")
    return out


def _safe_id(sample: str) -> bool:
    """A sample id: one name, or names joined by `/` (`photorealistic/index_0003`), each path-safe."""
    return len(sample) <= 512 and all(SAMPLE_ID_RE.match(name) for name in sample.split("/"))


def _safe_source(source: str) -> bool:
    """A key under the stage's input root, as the storage's own check has it (relative, no `.` or `..`
    segment, no backslash, no NUL): any other character a file system or S3 allows in a name is a name
    (U+202F in a macOS screenshot's, U+00A0, an escape; terminals are shown them escaped,
    `genfab.contract.text.shown`)."""
    return (0 < len(source) <= MAX_SOURCE and not source.startswith("/") and "\\" not in source
            and "\0" not in source and all(seg not in ("", ".", "..") for seg in source.split("/")))
