"""What a stage implements (`Stage`) and what it gets per sample (`Sample`)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from genfab.inventory import SampleRef, ShardReport
from genfab.stages.runtime.context import StageContext
from genfab.stages.runtime.errors import BadInput, FatalError
from genfab.storage import Marker, Reuse, StorageError, check_reuse, write_marker

S = TypeVar("S")


def sample_seed(base: int, sample_id: str) -> int:
    """A per-sample seed: the same job seed and sample always give the same value, in any shard."""
    digest = hashlib.sha256(f"{base}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def retry_seed(seed: int, attempt: int, key: str) -> int:
    """The seed of try `attempt` (0 = the first) of the output `key` whose first try uses `seed`.
    The first try keeps `seed` (the pipeline's documents fix it, often `seed + iteration`); a retry
    gets a seed of its own, derived from the output and the attempt, so it never reuses the seed of a
    sibling output (`seed + attempt` was the next iteration's seed, and could duplicate its image)."""
    return seed if attempt == 0 else sample_seed(seed, f"{key}#retry{attempt}")


SHARD_ERRORS = (FatalError, BadInput, StorageError, MemoryError, ModuleNotFoundError)
"""What a sample's work may raise that is about the shard (its environment, storage or memory), not
the sample: it ends the shard instead of failing one sample."""

def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(8 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Sample:
    """One sample being produced. Outputs go straight to storage (data first); the runtime writes
    the `_SUCCESS.json` marker with their checksums only after `process` returns."""

    def __init__(self, ref: SampleRef, ctx: StageContext, marker_prefix: str, config_hash: str | None = None,
                 base_hash: str | None = None, previous: Marker | None = None) -> None:
        self.ref = ref
        self.previous = previous
        """The marker this sample had before (another config, or outputs that failed the reuse check):
        its outputs that this commit does not write again are deleted, so a folder never keeps a
        file from an earlier config (an image in `train/` that now goes to `val/`)."""
        self.ctx = ctx
        self.marker_prefix = marker_prefix
        self.config_hash = config_hash or ctx.config_hash
        """What the marker records (a whole-set stage's also covers its unit list)."""
        self.base_hash = base_hash or ctx.base_hash
        self.outputs: dict[str, str] = {}
        self.sizes: dict[str, int] = {}
        self.params: dict[str, Any] = {}
        """Per-sample parameters worth keeping (drawn lighting, chosen backend): stored in the marker."""
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        """One-line remarks for the stage's status message (reported as `{sample id}: note`)."""
        self.produced_by: str | None = None
        """What made this sample's outputs, where a stage can run more than one backend or model
        (`classical`, `sam3:facebook/sam3`): counted per value in the run's summary (`producedBy`)."""
        self._writes: list[Future[None]] = []
        self._scratch: Path | None = None

    @property
    def id(self) -> str:
        return self.ref.id

    @property
    def scratch(self) -> Path:
        """A folder of this sample's own for local files (a PLY to upload, a video to encode), under the
        process's scratch space; removed once the sample is committed or failed, so a warm worker's disk
        does not fill with the files of the shards it ran before."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="sample-", dir=self.ctx.workdir))
        return self._scratch

    def release(self) -> None:
        """The sample is done (committed or failed): its scratch folder goes."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def seed(self, base: int) -> int:
        """This sample's seed derived from the job's `base` seed."""
        return sample_seed(base, self.id)

    # -- inputs
    def read_source(self) -> bytes:
        """The input file of a stage that reads the job input."""
        if self.ref.source is None:
            raise ValueError(f"sample {self.id} has no input file (stage {self.ctx.stage} reads upstream outputs)")
        return self.ctx.source.read_bytes(self.ref.source)

    def read_upstream(self, key: str, stage: str | None = None) -> bytes:
        return self.ctx.upstream_output(stage).read_bytes(key)

    # -- outputs (written in the background; `commit` waits for them before the marker)
    def write(self, key: str, data: bytes) -> None:
        """Write one output, relative to the stage's output root."""
        self.outputs[key] = hashlib.sha256(data).hexdigest()
        self.sizes[key] = len(data)
        self._writes.append(self.ctx.writer.submit(self.ctx.output.write_bytes, key, data))

    def write_json(self, key: str, value: Any) -> None:
        self.write(key, json.dumps(value, indent=2, sort_keys=True, default=str).encode())

    def write_file(self, key: str, path: Path) -> None:
        """Upload a local file (multipart for large artifacts). The file must stay until the sample
        is committed."""
        self.outputs[key] = _file_digest(path)
        self.sizes[key] = path.stat().st_size
        self._writes.append(self.ctx.writer.submit(self.ctx.output.upload_file, key, path))

    def write_later(self, key: str, encode: Callable[[], bytes]) -> None:
        """Write one output whose bytes `encode` makes (a PNG, an npz, a JSON of many rows) off the stage's
        thread: the encoding and the write run on the writer's threads while the stage goes on with this
        sample and the next, and `commit` waits for them. `encode` must only read what it was given: the
        stage may not change those objects afterwards. An encoding that raises fails the commit as a failed write
        does (the shard ends and is retried)."""
        self._reserve(key)

        def run() -> None:
            data = encode()
            self.outputs[key], self.sizes[key] = hashlib.sha256(data).hexdigest(), len(data)
            self.ctx.output.write_bytes(key, data)
        self._writes.append(self.ctx.writer.submit(run))

    def write_file_later(self, key: str, path: Path, make: Callable[[Path], object]) -> None:
        """Write one output that `make(path)` writes to a local file (a video, a PLY, a recording), off the
        stage's thread as `write_later` does; a file `make` leaves missing or empty fails the commit."""
        self._reserve(key)

        def run() -> None:
            make(path)
            if not path.is_file() or path.stat().st_size == 0:
                raise RuntimeError(f"output {key} was not written (no local file {path.name} after encoding it)")
            self.outputs[key], self.sizes[key] = _file_digest(path), path.stat().st_size
            self.ctx.output.upload_file(key, path)
        self._writes.append(self.ctx.writer.submit(run))

    def _reserve(self, key: str) -> None:
        """Keep the output's place in the marker's order (the order the stage wrote them in), whatever
        order the background encodings finish in."""
        self.outputs[key], self.sizes[key] = "", 0

    def commit(self, started: float) -> Marker:
        """Wait until every output is stored (a failed write raises), then write the marker."""
        self.timings.setdefault("seconds", round(time.time() - started, 4))
        for write in self._writes:
            write.result()
        marker = Marker(self.config_hash, dict(self.outputs), dict(self.timings),
                        {"sampleId": self.id, "params": self.params} if self.params else {"sampleId": self.id},
                        dict(self.sizes), self.base_hash)
        write_marker(self.ctx.output, self.marker_prefix, marker)
        if self.previous is not None:
            self.ctx.output.delete_keys(sorted(set(self.previous.outputs) - set(self.outputs)))
        return marker


class Stage(Generic[S]):
    """Base class of stage implementations. Subclasses set `name`, load models in `setup` (once per
    process, which may run several shards), and produce one sample in `process`. Raise `SampleError`
    for a bad sample, `BadInput` for an unusable config, anything else for a retryable crash.

    `S` is the stage's settings type: a built-in stage gets its mounted config validated against the
    settings model its pipeline declares (`genfab.api.pipeline.StageDecl.settings`) as `settings`
    before `setup`; a stage run without a declared model (custom stages) gets the config dict."""

    name: ClassVar[str] = ""
    settings: S
    declared_as: str = ""
    """The `module:attr` its pipeline declares it by, where the registry made it (a `SampleStage`'s
    functions run in a class of the runtime's own, so its class does not say)."""
    marker_dir: ClassVar[str] = ""
    """Folder under the stage output that holds per-sample marker folders. Empty puts the marker in
    the sample's folder of this stage's layout (`{id}/_SUCCESS.json`, `{id}/outpaint/_SUCCESS.json`:
    stages that share an output root keep apart); flat layouts (`{id}_mask.png`) use e.g. `_markers`."""

    def marker_folder(self, ctx: StageContext) -> str:
        """The folder holding one marker folder per sample (`marker_dir`; a stage whose folder
        depends on the run overrides this); empty: each marker sits in its sample's own folder."""
        return self.marker_dir

    def marker_prefix(self, sample_id: str, ctx: StageContext) -> str:
        folder = self.marker_folder(ctx)
        if folder:
            return f"{folder}/{sample_id}"
        return ctx.sample_prefix(sample_id).rstrip("/")

    def reuse(self, ctx: StageContext, sample_id: str) -> Reuse:
        """Whether the sample is committed with this config and its outputs are intact."""
        return check_reuse(ctx.output, self.marker_prefix(sample_id, ctx), ctx.config_hash, ctx.verify, ctx.base_hash)

    def setup(self, ctx: StageContext) -> None:
        """Load models and validate the config (raise `BadInput`). Timed as model load seconds. Called
        once per process, before its first sample: a warm worker then runs shard after shard with what
        it loaded (per-shard state belongs in `finish`, or keyed by `ctx.index` where it is used)."""

    batch_size: int = 1
    """Samples handed to `process_batch` at once (GPU stages batch their model calls)."""

    def samples_per_batch(self, ctx: StageContext) -> int:
        """Samples per `process_batch` call: `spec.stages.<name>.batchSize`, else `batch_size`."""
        return max(1, ctx.cfg.batch_size or self.batch_size)

    def process(self, sample: Sample) -> None:
        raise NotImplementedError(f"stage {self.name or type(self).__name__} does not implement process()")

    def process_batch(self, samples: list[Sample]) -> list[Exception | None]:
        """Produce several samples; returns, per sample, None or the exception that failed it.
        The default calls `process` one by one; batching stages override this."""
        errors: list[Exception | None] = []
        for sample in samples:
            try:
                self.process(sample)
                errors.append(None)
            except SHARD_ERRORS:
                raise  # the shard's environment, not this sample
            except Exception as exc:  # one bad sample must not stop the shard
                errors.append(exc)
        return errors

    def prefetch(self, samples: list[Sample]) -> None:
        """Called with the next batch just before `process_batch` of the current one, so a stage can
        start reading and decoding its inputs while the current batch computes (default: nothing)."""

    def finish(self, ctx: StageContext) -> None:
        """After the last sample of each shard (flush batches, write shard-level files). A warm worker
        goes on to its next shard after it: release what `setup` made in `close`, not here."""

    def close(self) -> None:
        """The process is done with the stage (its last shard ended, in any way): stop the pools and
        threads `setup` started (default: nothing)."""

    def abort(self) -> None:
        """The shard ends on an error (or a signal) in the middle of its samples: stop background work
        that would keep the process from exiting (default: nothing). `finish` is not called then."""

    def after_report(self, ctx: StageContext, report: ShardReport) -> None:
        """After the shard's final report is stored (succeeded or failed): a place for files that sum
        up the stage from every shard's report (reference-object's `pipeline_state.json`). An error
        here is logged and changes nothing else (default: nothing)."""

    prunes_outputs: ClassVar[bool] = False
    """The stage's output folder holds exactly its current samples' outputs (reference-object's
    numbered folders, which tools read whole): at shard start the outputs and markers of samples no
    longer in the stage's units are deleted, and a sample that fails loses what an earlier config
    made of it. Needs a `marker_folder` (markers are listed there). Off by default: elsewhere a narrowed
    input selection (`ids`, `limit`) must not delete the rest of a dataset."""

    whole_set: ClassVar[bool] = False
    """The stage makes one result from all its units at once (the difix split and adapter: manifests
    over every exported scene). Declare it `singleton`; the runtime calls `process_set` once, commits
    one marker whose hash covers the config and the unit list, and reuses it only when both match, so
    a unit added or removed upstream makes the stage run again."""

    def process_set(self, sample: Sample, units: list[SampleRef]) -> None:
        """A whole-set stage's work: write its outputs through `sample`. Raise `SampleError` to fail
        every unit with that reason."""
        raise NotImplementedError(f"stage {self.name or type(self).__name__} does not implement process_set()")


WHOLE_SET_ID = "_set"
"""The marker folder name of a whole-set stage's one result."""


def whole_set_hash(config_hash: str, units: list[SampleRef]) -> str:
    digest = hashlib.sha256(config_hash.encode())
    for ref in units:
        digest.update(b"\n" + ref.id.encode())
    return digest.hexdigest()
