"""A training stage's units: one per node (`node-0` .. `node-<n-1>`), so each Job index is one node of
the process group. Torch-free: the executors import it to count shards."""

from __future__ import annotations

from collections.abc import Callable

from genfab.contract import StageConfig
from genfab.inventory import InventoryError, SampleRef
from genfab.storage.base import Storage


def node_id(index: int) -> str:
    return f"node-{index}"


def node_units(cfg: StageConfig, open_fn: Callable[[str], Storage]) -> list[SampleRef]:
    nodes = cfg.config.get("nodes", 1)
    if not isinstance(nodes, int) or nodes < 1:
        raise InventoryError(f"stage {cfg.stage!r}: config.nodes must be a positive integer, not {nodes!r}")
    return [SampleRef(node_id(i)) for i in range(nodes)]
