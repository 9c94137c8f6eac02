"""The names both sides of the stage contract agree on: environment variables, exit codes, the
run folder's keys and the shard slicing. Changing one of these is a contract change."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

CONTRACT_VERSION: Final = 1
"""Bumped when a stage image and an executor of different versions could misread each other."""

CONFIG_PATH = "/etc/genfab/stage.json"
"""Where the operator mounts the stage config (ConfigMap); `GENFAB_STAGE_CONFIG` overrides it."""

# -- environment of a shard process (a stage Pod or a local subprocess)
ENV_CONFIG = "GENFAB_STAGE_CONFIG"
ENV_INDEX = "JOB_COMPLETION_INDEX"
"""Set by Kubernetes for Indexed Jobs; the local runner sets it the same way."""
ENV_SHARDS = "GENFAB_SHARD_COUNT"
ENV_STAGE = "GENFAB_STAGE"
ENV_SAMPLE_MANIFEST = "GENFAB_SAMPLE_MANIFEST"
"""Set (to 1) where the executor wrote the stage's sample manifest (genfab.inventory.manifest): the shard
reads its slice from there instead of listing the stage's samples itself."""
ENV_RECORDS = "GENFAB_RECORDS"
"""A records Pod's request (genfab.sequencing.records.RecordsRequest, as JSON)."""
ENV_PARENT_PID = "GENFAB_PARENT_PID"
"""Set by the local runner: the pid a shard process must outlive no longer than (see die_with_parent)."""
ENV_INPUT_URIS = "GENFAB_INPUT_URIS"
"""Space-separated input URIs (also in the config), for custom stages that only read env."""
ENV_OUTPUT_URI = "GENFAB_OUTPUT_URI"
ENV_RUN_URI = "GENFAB_RUN_URI"
ENV_METRICS_PORT = "GENFAB_METRICS_PORT"
ENV_PROGRESS_SECONDS = "GENFAB_PROGRESS_SECONDS"
ENV_TERMINATION_LOG = "GENFAB_TERMINATION_LOG"
ENV_MODELS = "GENFAB_MODELS"
"""Model location for `from_pretrained` (a storage URI or a local directory), from `spec.models`."""
ENV_CPU_WORKERS = "GENFAB_CPU_WORKERS"
"""Worker processes a CPU stage may use (default: the Pod's CPU limit)."""
ENV_IO_THREADS = "GENFAB_IO_THREADS"
"""Threads a shard uses to store outputs in the background (default 8)."""
ENV_WORKERS = "GENFAB_WORKERS"
"""Set by the operator on a worker Job (fewer Pods than the stage has shards): the Job's index is the
worker's, and each worker takes shard after shard of the `GENFAB_SHARD_COUNT` from a cursor in the run's
storage (genfab.inventory.workers) with the models it loaded once."""
ENV_SHARD_RETRIES = "GENFAB_SHARD_RETRIES"
"""A worker Pod's tries per shard beyond the first (`spec.retries`): its Job's own backoff counts the
worker's restarts, not one shard's."""
ENV_PROGRESS_DEADLINE = "GENFAB_PROGRESS_DEADLINE"
"""A worker Pod's stage's `progressDeadlineSeconds`: a stop that ends a shard idle that long is the
operator's no-progress stop, a try; any other stop (preemption, eviction) is not."""
ENV_WAITING_FILE = "GENFAB_WAITING_FILE"
"""Set by the operator on a streaming stage's worker Job (`WAITING_FILE`): the file a worker keeps while
it waits for committed input. The Pod's readiness probe fails while it is there, so a waiting worker is
not Ready, and the Job controller, when the operator lowers the Job's parallelism, stops waiting workers
first (it removes not-Ready Pods before Ready ones, without counting them failed)."""
WAITING_FILE = "/tmp/genfab-waiting"
ENV_HOSTED = "GENFAB_HOSTED"
"""Set by the operator on a shared worker Job (the first member's of a group of stages that load the same
models, `PlannedStage.shares_worker`): the other members' stages and config hashes (JSON,
`[{"stage": ..., "configHash": ...}]`). Its workers take those stages' shards too, from each stage's own
cursor, once the operator says the stage started (`hosted_key`), with the models loaded once for all."""
ENV_WORKER_FD = "GENFAB_WORKER_FD"
"""Set by the local runner for a warm worker: the process reads shard after shard from its stdin (one
JSON line each) and writes each shard's exit code to this file descriptor (genfab.stages.runtime.feed).
Unset: the process runs the one shard `JOB_COMPLETION_INDEX` names, as a Pod of an Indexed Job does."""
ENV_VERIFY = "GENFAB_VERIFY"
"""`sha256`: reuse re-hashes every committed output (`genfab run --verify`). Unset: reuse checks that
each output exists with its committed size."""
# -- a gang stage (distributed training: every shard is one node of one process group)
ENV_NNODES = "GENFAB_NNODES"
"""Nodes (Pods, shards) of the group; the node rank is `JOB_COMPLETION_INDEX`."""
ENV_NPROC_PER_NODE = "GENFAB_NPROC_PER_NODE"
"""Worker processes per node (one per GPU)."""
ENV_RDZV_HOST = "GENFAB_RDZV_HOST"
"""Where node 0 listens (`<job>-0.<headless service>` in a cluster, 127.0.0.1 locally)."""
ENV_RDZV_PORT = "GENFAB_RDZV_PORT"
RDZV_PORT = 29500
"""The rendezvous port in a cluster (torchrun's default); the local runner picks a free one."""
ENV_GROUP_ID = "GENFAB_GROUP_ID"
"""Who belongs to the group (the resource's UID and the stage's config hash in a cluster; the run's
port and output locally): every worker checks its peers carry the same before any data moves."""
ENV_PIPELINES = "GENFAB_PIPELINES"
"""Comma-separated modules declaring extra pipelines (besides the installed entry points)."""
ENV_COMPILE_CACHE = "GENFAB_COMPILE_CACHE"
"""`off`: the stage neither loads nor stores torch's compile artifacts in the run's storage
(genfab.stages.runtime.compile_cache). Set by the operator where the resource's own code may not run
beside the storage credentials, and by `genfab run` always."""

# -- object storage: endpoint settings as values, credentials from a Secret
ENV_S3_ENDPOINT = "GENFAB_S3_ENDPOINT"
ENV_S3_REGION = "GENFAB_S3_REGION"
ENV_S3_ADDRESSING_STYLE = "GENFAB_S3_ADDRESSING_STYLE"
ENV_S3_SECRET_DIR = "GENFAB_S3_SECRET_DIR"
ENV_FILE_ROOTS = "GENFAB_FILE_ROOTS"
"""JSON list of the folders `file://` storage is confined to in this process (symbolic links
included): the operator sets it on stage Pods from the chart's `storage.filePrefixes`. Unset: not
confined (a laptop)."""
"""A mounted Secret directory with one file per credential key (instead of the variables below)."""
ENV_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
ENV_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
ENV_SESSION_TOKEN = "AWS_SESSION_TOKEN"
CREDENTIAL_KEYS: tuple[tuple[str, bool], ...] = (
    (ENV_ACCESS_KEY_ID, False), (ENV_SECRET_ACCESS_KEY, False), (ENV_SESSION_TOKEN, True))
"""Storage Secret keys passed to stage Pods, and whether each is optional."""
RESERVED_ENV_PREFIXES = ("GENFAB_", "AWS_")
"""Names genfab sets itself (custom stages cannot set them)."""
RESERVED_ENV_NAMES = ("JOB_COMPLETION_INDEX",)


def is_reserved_env(name: str) -> bool:
    return name.startswith(RESERVED_ENV_PREFIXES) or name in RESERVED_ENV_NAMES

# -- exit codes of a shard process
EXIT_OK = 0
"""The shard ran; failed samples are recorded in its report, not fatal."""
EXIT_RETRYABLE = 1
"""The shard crashed (storage outage, CUDA error, ...). Any exit other than 0 and 42 is retried."""
EXIT_BAD_INPUT = 42
"""The shard's input or config is unusable: retrying cannot help (podFailurePolicy: FailIndex)."""
EXIT_INTERRUPTED = 130
"""SIGINT (Ctrl-C); a shard stopped by another signal exits 128 + its number (SIGTERM, preemption: 143).
Retried like a crash."""

# -- the run folder, `{output}/_genfab/`
RUN_DIR = "_genfab"
STATUS_KEY = f"{RUN_DIR}/status.json"
SUMMARY_KEY = f"{RUN_DIR}/summary.json"
DROPPED_KEY = f"{RUN_DIR}/dropped_samples.csv"
SAMPLES_DIR = f"{RUN_DIR}/samples"
"""Each stage's sample manifest (`{stage}/{hash10}/manifest.json` and its parts): genfab's, never a sample."""
RUN_REPORT_DIR = f"{RUN_DIR}/report"
"""`genfab report`'s pages, thumbnails and plots (`index.html` first), written into the output itself."""
RUN_REPORT_KEY = f"{RUN_REPORT_DIR}/index.html"
CHECKPOINT_NAME = re.compile(r"^model_(\d+)\.pkl$")
"""A training checkpoint's file name under `checkpoints/` (Difix3D's `model_<step>.pkl`)."""


def checkpoint_name(step: int) -> str:
    return f"model_{step}.pkl"


def checkpoint_step(name: str) -> int | None:
    """The step of a `model_<step>.pkl` file name or key, else None."""
    found = CHECKPOINT_NAME.match(name.rsplit("/", 1)[-1])
    return int(found.group(1)) if found else None


def latest_checkpoint(names: list[str]) -> tuple[int, str] | None:
    """(step, name) of the highest-step checkpoint among file names or keys."""
    steps = [(s, n) for n in names if (s := checkpoint_step(n)) is not None]
    return max(steps) if steps else None


def best_checkpoint(held_out_psnr: Mapping[int, float], names: list[str]) -> tuple[int, str, float] | None:
    """(step, name, PSNR) of the checkpoint with the highest held-out PSNR among those evaluated at
    their own step (the latest step on a tie), else None."""
    at = {s: n for n in names if (s := checkpoint_step(n)) is not None}
    scored = [(psnr, step, at[step]) for step, psnr in held_out_psnr.items() if step in at]
    if not scored:
        return None
    psnr, step, name = max(scored)
    return step, name, psnr


TRAINING_KEY = f"{RUN_DIR}/training.json"
"""A training stage's state (step, maxSteps, loss, imagesPerSecond, etaSeconds, checkpoints,
heldOutPsnr: {step: dB}), written by its node 0 while it trains; the executors put it in the resource's
status."""

DEFAULT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
"""Input files that count as samples when a stage reads a folder and says nothing else."""


def report_prefix(stage: str, config_hash: str) -> str:
    """Run-relative folder of a stage's shard reports; the hash keeps other configs' reports apart."""
    return f"{RUN_DIR}/progress/{stage}/{config_hash[:10]}/"


def report_key(stage: str, config_hash: str, index: int) -> str:
    return f"{report_prefix(stage, config_hash)}shard-{index:05d}.json"


def work_prefix(stage: str, config_hash: str) -> str:
    """Run-relative folder of a worker Job's shared state (genfab.inventory.workers): the cursor its
    workers take shards from, and one record per worker of the shards it finished."""
    return f"{RUN_DIR}/work/{stage}/{config_hash[:10]}/"


def cursor_key(stage: str, config_hash: str) -> str:
    return f"{work_prefix(stage, config_hash)}cursor.json"


def worker_key(stage: str, config_hash: str, worker: int) -> str:
    return f"{work_prefix(stage, config_hash)}worker-{worker:05d}.json"


def hosted_key(stage: str, config_hash: str) -> str:
    """A stage run by another stage's shared worker Job (`ENV_HOSTED`): its config and shard count once it
    started, or why it will not run (`genfab.contract.hosted`), written by the operator."""
    return f"{work_prefix(stage, config_hash)}hosted.json"


def input_key(stage: str, config_hash: str) -> str:
    """A streaming stage's committed input (`{"ready": k}`: its shards below k may be taken), written by
    the operator as its upstream's shards end (genfab.inventory.workers)."""
    return f"{work_prefix(stage, config_hash)}input.json"


def quality_prefix(stage: str, config_hash: str) -> str:
    """Run-relative folder of a stage's quality tables: one JSON per shard, `{sample: {figure: value}}` of
    the samples it committed, written with its final report (what `genfab report` sorts worst first)."""
    return f"{RUN_DIR}/quality/{stage}/{config_hash[:10]}/"


def quality_key(stage: str, config_hash: str, index: int) -> str:
    return f"{quality_prefix(stage, config_hash)}shard-{index:05d}.json"


# -- shards
def shard_bounds(total: int, index: int, shards: int) -> tuple[int, int]:
    """Deterministic contiguous slice `[start, stop)` of `total` sorted samples for shard `index`.

    Balanced for any shard count (sizes differ by at most one), so a changed count still
    partitions every sample exactly once.
    """
    if shards < 1 or not 0 <= index < shards:
        raise ValueError(f"shard index {index} is outside 0..{shards - 1}")
    return total * index // shards, total * (index + 1) // shards


def shard_count(samples: int, shard_size: int, fixed: int | None = None) -> int:
    """Shards for `samples` (at least one, so an empty stage still reports), unless fixed."""
    return fixed if fixed else max(1, -(-samples // shard_size))


MAX_STAGE_SHARDS = 100_000
"""The most shards one stage has: a Kubernetes Indexed Job runs at most 100,000 Pods with per-index
retries (above that it needs `maxFailedIndexes` and at most 10,000 at once), and each shard's report is
named by a five-digit index."""


def too_many_shards(stage: str, samples: int, shard_size: int, shards: int) -> str | None:
    """One line when a stage would have more shards than `MAX_STAGE_SHARDS` (what to set instead), else None."""
    if shards <= MAX_STAGE_SHARDS:
        return None
    return (f"stage {stage}: {samples:,} samples at shardSize {shard_size} are {shards:,} shards, and a stage "
            f"runs at most {MAX_STAGE_SHARDS:,} (a Kubernetes Indexed Job's Pods, genfab's shard reports): set "
            f"spec.stages.{stage}.shardSize to {-(-samples // MAX_STAGE_SHARDS)} or more")


MISSING_MODEL = "missing"
"""The identity of a model that is not in the model location (genfab.inventory.model_identity): the
stage will fail or fall back, and a refusal before the start names it (genfab.sequencing.preflight)."""
