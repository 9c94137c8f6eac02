"""The stage contract, executor side: what every stage process gets, and where it reports.

Both executors build a shard's inputs here (the operator as a ConfigMap + Pod env, the local runner
as a file + subprocess env), and the stage runtime reads exactly these names back. Pure.

Progress channel (Pod -> executor): each shard writes a small JSON report to object storage under
the run's `_genfab/progress/` while it runs and once more when it ends, and its final counts to the
Pod's termination message. Stage Pods already hold storage credentials for their outputs, so this
needs no Kubernetes API access at all: the stage ServiceAccount has no RBAC rules and no token is
mounted, so a compromised stage cannot touch any other resource.
"""

from __future__ import annotations

from typing import Any

from genfab.planner.model import Plan, PlannedStage

CONTRACT_VERSION = 1
CONFIG_PATH = "/etc/genfab/stage.json"
"""Where the operator mounts the stage config (ConfigMap); `GENFAB_STAGE_CONFIG` overrides it."""

ENV_CONFIG = "GENFAB_STAGE_CONFIG"
ENV_INDEX = "JOB_COMPLETION_INDEX"
"""Set by Kubernetes for Indexed Jobs; the local runner sets it the same way."""
ENV_SHARDS = "GENFAB_SHARD_COUNT"
ENV_STAGE = "GENFAB_STAGE"
ENV_INPUT_URIS = "GENFAB_INPUT_URIS"
"""Space-separated input URIs (also in the config), for custom stages that only read env."""
ENV_OUTPUT_URI = "GENFAB_OUTPUT_URI"
ENV_RUN_URI = "GENFAB_RUN_URI"
ENV_METRICS_PORT = "GENFAB_METRICS_PORT"
ENV_PROGRESS_SECONDS = "GENFAB_PROGRESS_SECONDS"
ENV_TERMINATION_LOG = "GENFAB_TERMINATION_LOG"

EXIT_OK = 0
"""The shard ran; failed samples are recorded in its report, not fatal."""
EXIT_RETRYABLE = 1
"""The shard crashed (storage outage, CUDA error, ...). Any exit other than 0 and 42 is retried."""
EXIT_BAD_INPUT = 42
"""The shard's input or config is unusable: retrying cannot help (podFailurePolicy: FailIndex)."""
EXIT_INTERRUPTED = 130
"""SIGINT/SIGTERM (Ctrl-C, preemption): retried like a crash."""

ENV_MODELS = "GENFAB_MODELS"
"""Model location for `from_pretrained` (a storage URI or a local directory), from `spec.models`."""
ENV_CPU_WORKERS = "GENFAB_CPU_WORKERS"
"""Worker processes a CPU stage may use (default: the Pod's CPU limit)."""
DEFAULT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
"""Input files that count as samples when a stage reads a folder and says nothing else."""

RUN_DIR = "_genfab"
STATUS_KEY = f"{RUN_DIR}/status.json"
SUMMARY_KEY = f"{RUN_DIR}/summary.json"
DROPPED_KEY = f"{RUN_DIR}/dropped_samples.csv"


def report_prefix(stage: str, config_hash: str) -> str:
    """Run-relative folder of a stage's shard reports; the hash keeps other configs' reports apart."""
    return f"{RUN_DIR}/progress/{stage}/{config_hash[:10]}/"


def report_key(stage: str, config_hash: str, index: int) -> str:
    return f"{report_prefix(stage, config_hash)}shard-{index:05d}.json"


def shard_bounds(total: int, index: int, shards: int) -> tuple[int, int]:
    """Deterministic contiguous slice `[start, stop)` of `total` sorted samples for shard `index`.

    Balanced for any shard count (sizes differ by at most one), so a changed count still
    partitions every sample exactly once.
    """
    if shards < 1 or not 0 <= index < shards:
        raise ValueError(f"shard index {index} is outside 0..{shards - 1}")
    return total * index // shards, total * (index + 1) // shards


def stage_config(plan: Plan, stage: PlannedStage) -> dict[str, Any]:
    """The JSON document mounted into every Pod of `stage` (identical for all its shards)."""
    return {
        "contract": CONTRACT_VERSION,
        "resource": {"kind": plan.kind, "name": plan.name, "namespace": plan.namespace},
        "pipeline": plan.pipeline,
        "runUri": plan.output_uri,
        "stage": stage.name,
        "family": stage.family,
        "configHash": stage.config_hash,
        "inputUris": list(stage.input_uris),
        "outputUri": stage.output_uri,
        "outputLayout": stage.output_layout,
        "shardSize": stage.shard_size,
        "upstream": [
            {"name": u.name, "configHash": u.config_hash, "outputUri": u.output_uri}
            for u in (plan.stage(n) for n in stage.upstream)
        ],
        # Every stage upstream of this one, transitively: later stages also read earlier outputs
        # (recombine reads segment's background; organize gathers every stage's files).
        "ancestors": [
            {"name": a.name, "configHash": a.config_hash, "outputUri": a.output_uri}
            for a in plan.stages if a.name in _ancestors(plan, stage)
        ],
        "selection": {"suffixes": list(DEFAULT_SUFFIXES), **stage.selection},
        "config": stage.config,
        "options": stage.options,
    }


def _ancestors(plan: Plan, stage: PlannedStage) -> set[str]:
    seen: set[str] = set()
    todo = list(stage.upstream)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(plan.stage(name).upstream)
    return seen


def shard_env(stage_cfg: dict[str, Any], index: int, shards: int) -> dict[str, str]:
    """Environment of one shard's process (the Pod spec sets the same names)."""
    shard_bounds(0, index, shards)  # validates index/shards
    return {
        ENV_INDEX: str(index),
        ENV_SHARDS: str(shards),
        ENV_STAGE: str(stage_cfg["stage"]),
        ENV_INPUT_URIS: " ".join(stage_cfg["inputUris"]),
        ENV_OUTPUT_URI: str(stage_cfg["outputUri"]),
        ENV_RUN_URI: str(stage_cfg["runUri"]),
    }


def shard_count(samples: int, shard_size: int, fixed: int | None = None) -> int:
    """Shards for `samples` (at least one, so an empty stage still reports), unless fixed."""
    return fixed if fixed else max(1, -(-samples // shard_size))
