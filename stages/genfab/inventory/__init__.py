"""What a stage works on and what it has done: sample discovery (input listing or upstream shard
reports) and the shard reports themselves. Stages and both executors use the same functions, so
the shard count an executor picks and the slice a shard takes always agree."""

from genfab.inventory.reports import (
    FailedSample,
    ShardReport,
    ShardState,
    clear_reports,
    read_report,
    read_reports,
    write_report,
)
from genfab.inventory.samples import (
    InventoryError,
    SampleRef,
    discover_inputs,
    input_samples,
    resolve_samples,
    sample_id_for,
    source_root,
    upstream_succeeded,
)

__all__ = [
    "FailedSample",
    "InventoryError",
    "SampleRef",
    "ShardReport",
    "ShardState",
    "clear_reports",
    "discover_inputs",
    "input_samples",
    "read_report",
    "read_reports",
    "resolve_samples",
    "sample_id_for",
    "source_root",
    "upstream_succeeded",
    "write_report",
]
