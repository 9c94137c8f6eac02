"""`StageContext`: everything a shard process knows, built from the mounted config and its env."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from genfab.contract import CONFIG_PATH, ContractError, StageConfig, StageRef, sample_subdir, shard_bounds
from genfab.contract.names import ENV_CONFIG, ENV_INDEX, ENV_IO_THREADS, ENV_SAMPLE_MANIFEST, ENV_SHARDS, ENV_VERIFY
from genfab.contract.streams import part, upstream_span
from genfab.inventory import InventoryError, SampleRef, read_report, resolve_samples, source_root
from genfab.inventory.manifest import InvalidManifest, SampleManifest, read_manifest, read_slice
from genfab.stages.runtime.errors import BadInput
from genfab.stages.runtime.metrics import StageMetrics
from genfab.storage import Check, Storage, StorageError, open_storage


@dataclass
class StageContext:
    cfg: StageConfig
    """The mounted stage config (see `genfab.contract.StageConfig`)."""
    index: int
    shards: int
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    metrics: StageMetrics | None = None
    """The shard's Prometheus metrics (set by the runtime)."""
    heartbeat: Callable[[], None] = lambda: None
    """Say the shard is making progress although no sample finished (a training run's steps): the
    executors' progress deadline counts from the last heartbeat too. Set by the runtime."""
    note: Callable[[str], None] = lambda text: None
    """A one-line remark about the whole shard for the stage's status (a fallback that made all its
    samples), not about one sample. Set by the runtime."""

    @property
    def stage(self) -> str:
        return self.cfg.stage

    def take_shard(self, index: int, env: Mapping[str, str]) -> None:
        """Make shard `index` this context's shard (a warm worker's next one): its slice of the samples
        is read again and `env` (its index, its termination file) applies; what belongs to the stage
        (storage clients, the sample list, the scratch folder) is kept."""
        try:
            shard_bounds(0, index, self.shards)
        except ValueError as exc:
            raise BadInput(f"shard {index}: {exc}") from None
        self.index = index
        self.env = {**self.env, **env}
        self.__dict__.pop("samples", None)

    @property
    def config_hash(self) -> str:
        return self.cfg.config_hash

    @property
    def base_hash(self) -> str:
        """The config hash without a re-run token (the contract's `baseHash`; older configs: the hash)."""
        return self.cfg.base_hash or self.cfg.config_hash

    @property
    def config(self) -> dict[str, Any]:
        """The stage's settings as mounted (camelCase). Built-in stages get them validated as
        `Stage.settings`; this raw form is for custom stages without a declared model."""
        return dict(self.cfg.config)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.cfg.options)

    @property
    def input_uris(self) -> tuple[str, ...]:
        return self.cfg.input_uris

    @property
    def upstream(self) -> tuple[StageRef, ...]:
        return self.cfg.upstream

    @property
    def verify(self) -> Check:
        """How reuse checks committed samples: `sha256` when asked (`genfab run --verify`), else size."""
        return "sha256" if self.env.get(ENV_VERIFY, "").strip().lower() == "sha256" else "size"

    def sample_prefix(self, sample_id: str) -> str:
        """Where a per-sample layout (`{sample}/gaussians/`) puts this sample's outputs, relative to
        the stage's output root."""
        return f"{sample_id}/{sample_subdir(self.cfg.output_layout)}"

    def open(self, uri: str) -> Storage:
        return open_storage(uri)

    @cached_property
    def run_storage(self) -> Storage:
        """The resource's output root (progress reports, summaries)."""
        return self.open(self.cfg.run_uri)

    @cached_property
    def output(self) -> Storage:
        """This stage's output root; sample outputs are keys under it."""
        return self.open(self.cfg.output_uri)

    @cached_property
    def source(self) -> Storage:
        """Where a first stage's input files are (`SampleRef.source` keys are relative to it)."""
        if not self.cfg.input_uris:
            raise BadInput(f"stage {self.stage!r} has no input URI")
        return self.open(source_root(self.cfg))

    def upstream_output(self, name: str | None = None) -> Storage:
        """Output root of an upstream stage (the only one when `name` is omitted)."""
        match = [u for u in self.upstream if name is None or u.name == name]
        if len(match) != 1:
            raise BadInput(f"stage {self.stage!r} has upstream {[u.name for u in self.upstream]}; asked for {name!r}")
        return self.open(match[0].output_uri)

    def _known(self, name: str) -> StageRef:
        for entry in self.cfg.known_stages():
            if entry.name == name:
                return entry
        known = sorted(e.name for e in self.cfg.known_stages())
        raise BadInput(f"stage {self.stage!r} does not run after a stage {name!r} (it runs after {known})")

    def stage_output(self, name: str) -> Storage:
        """Output root of any stage upstream of this one, direct or transitive."""
        return self.open(self._known(name).output_uri)

    def stage_hash(self, name: str) -> str:
        return self._known(name).config_hash

    def runs_after(self, name: str) -> bool:
        return any(e.name == name for e in self.cfg.known_stages())

    @cached_property
    def manifest(self) -> SampleManifest | None:
        """The stage's sample manifest, where the executor wrote one (`GENFAB_SAMPLE_MANIFEST`)."""
        if not self.env.get(ENV_SAMPLE_MANIFEST):
            return None
        try:
            return read_manifest(self.run_storage, self.stage, self.config_hash)
        except InvalidManifest as exc:
            raise BadInput(str(exc)) from None

    @cached_property
    def total_samples(self) -> int:
        """The stage's samples; a stage that streams from its upstream knows only its shard's (the rest
        are still being made)."""
        if self.cfg.stream is not None:
            return len(self.samples)
        return self.manifest.count if self.manifest is not None else len(self.all_samples)

    @cached_property
    def all_samples(self) -> list[SampleRef]:
        """Every sample of the stage (most stages need only `samples`: from a manifest, that reads less)."""
        if self.cfg.stream is not None:
            raise BadInput(f"stage {self.stage!r} takes its upstream's shards as they finish and cannot see all of "
                           "its samples: declare it a barrier (StageDecl.barrier)")
        if self.manifest is not None:
            return self._from_manifest(self.manifest, 0, self.manifest.count)
        try:
            return resolve_samples(self.cfg, self.open)
        except InventoryError as exc:
            raise BadInput(str(exc)) from None

    @cached_property
    def samples(self) -> list[SampleRef]:
        """This shard's slice of the stage's sorted samples (streaming: what the upstream shards it maps onto
        committed)."""
        if self.cfg.stream is not None:
            return streamed_samples(self.run_storage, self.cfg, self.index)
        start, stop = shard_bounds(self.total_samples, self.index, self.shards)
        if self.manifest is not None and "all_samples" not in self.__dict__:
            return self._from_manifest(self.manifest, start, stop)
        return self.all_samples[start:stop]

    def _from_manifest(self, manifest: SampleManifest, start: int, stop: int) -> list[SampleRef]:
        try:
            return [SampleRef(i, s) for i, s in read_slice(self.run_storage, manifest, start, stop)]
        except InvalidManifest as exc:
            raise BadInput(str(exc)) from None

    @cached_property
    def writer(self) -> ThreadPoolExecutor:
        """Threads that store sample outputs while the stage computes the next ones (object-store
        latency, not bandwidth, bounds small writes). `GENFAB_IO_THREADS`, default 8."""
        return ThreadPoolExecutor(max(1, int(self.env.get(ENV_IO_THREADS) or 8)), thread_name_prefix="genfab-write")

    @cached_property
    def workdir(self) -> Path:
        """Scratch space for this process (downloads, intermediate files): kept from shard to shard of a
        warm worker (what `setup` put there stays usable), deleted at exit."""
        return Path(tempfile.mkdtemp(prefix=f"genfab-{self.stage}-{self.index}-"))


def streamed_samples(run: Storage, cfg: StageConfig, index: int) -> list[SampleRef]:
    """Shard `index` of a stage that streams from its upstream: the samples the upstream shards it maps
    onto committed (genfab.contract.streams), as their final reports list them, sorted. The executor starts
    it only after those shards ended; one that left no final report (its process killed before it wrote
    one) committed nothing this stage can count on."""
    source = cfg.stream
    assert source is not None
    found: list[str] = []
    for up in upstream_span(index, source.shards, source.shard_size, cfg.shard_size):
        try:
            report = read_report(run, source.stage, source.config_hash, up, source.shards)
        except (StorageError, ValueError) as exc:
            raise BadInput(f"upstream shard {up} of stage {source.stage!r}: {exc}") from None
        if report is not None and not report.corrupt and report.state != "running":
            found.extend(sorted(set(report.succeeded))[part(index, source.shard_size, cfg.shard_size)])
    return [SampleRef(i) for i in found]


def _int_env(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    value = env.get(name)
    if value is None or value == "":
        if default is None:
            raise BadInput(f"environment variable {name} is not set (the stage contract requires it)")
        return default
    try:
        return int(value)
    except ValueError:
        raise BadInput(f"environment variable {name}={value!r} is not an integer") from None


def read_config(env: Mapping[str, str]) -> StageConfig:
    """The stage config from `GENFAB_STAGE_CONFIG` (default: the mount path)."""
    path = Path(env.get(ENV_CONFIG) or CONFIG_PATH)
    try:
        return StageConfig.from_json(path.read_bytes(), source=f"stage config {path}")
    except FileNotFoundError:
        raise BadInput(f"stage config {path} does not exist (set {ENV_CONFIG} or mount it)") from None
    except ContractError as exc:
        raise BadInput(str(exc)) from None


def load_context(env: Mapping[str, str] | None = None) -> StageContext:
    """Read the stage config and the shard env."""
    env = dict(os.environ if env is None else env)
    cfg = read_config(env)
    index = _int_env(env, ENV_INDEX, 0)
    shards = _int_env(env, ENV_SHARDS, 1)
    try:
        shard_bounds(0, index, shards)
    except ValueError as exc:
        raise BadInput(f"{ENV_INDEX}/{ENV_SHARDS}: {exc}") from None
    return StageContext(cfg=cfg, index=index, shards=shards, env=env)
