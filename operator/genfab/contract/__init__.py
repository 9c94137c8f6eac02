"""The stage contract: what an executor (the operator, the local runner) hands a shard process
and what the process hands back. The bottom layer: both planes import it, it imports neither.

- `config`: the typed, versioned stage config (`StageConfig`) with its JSON form;
- `names`: environment variable names (credentials included), exit codes, run-folder keys,
  progress-report keys and shard slicing;
- `paths`: the sample-id and storage-path checks.
"""

from genfab.contract.config import (
    ContractError,
    ResourceRef,
    Selection,
    StageConfig,
    StageRef,
    StreamSource,
    layout_dir,
    sample_subdir,
)
from genfab.contract.names import (
    CONFIG_PATH,
    CONTRACT_VERSION,
    DEFAULT_SUFFIXES,
    DROPPED_KEY,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RETRYABLE,
    RUN_DIR,
    RUN_REPORT_DIR,
    RUN_REPORT_KEY,
    SAMPLES_DIR,
    STATUS_KEY,
    SUMMARY_KEY,
    report_key,
    report_prefix,
    shard_bounds,
    shard_count,
    too_many_shards,
)

__all__ = [
    "CONFIG_PATH",
    "CONTRACT_VERSION",
    "DEFAULT_SUFFIXES",
    "DROPPED_KEY",
    "EXIT_BAD_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RETRYABLE",
    "RUN_DIR",
    "RUN_REPORT_DIR",
    "RUN_REPORT_KEY",
    "SAMPLES_DIR",
    "STATUS_KEY",
    "SUMMARY_KEY",
    "ContractError",
    "ResourceRef",
    "Selection",
    "StageConfig",
    "StageRef",
    "StreamSource",
    "layout_dir",
    "report_key",
    "report_prefix",
    "sample_subdir",
    "shard_bounds",
    "shard_count",
    "too_many_shards",
]
