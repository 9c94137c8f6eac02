"""The distributed launch of a training node: torchrun with the group's shape from the stage
contract (`GENFAB_NNODES`, `GENFAB_NPROC_PER_NODE`, `GENFAB_RDZV_HOST`/`PORT`, and the node rank
from `JOB_COMPLETION_INDEX`). Pure: the command and environment; the stage runs it."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

from genfab.contract.names import ENV_INDEX, ENV_NNODES, ENV_NPROC_PER_NODE, ENV_RDZV_HOST, ENV_RDZV_PORT, RDZV_PORT


@dataclass(frozen=True)
class Group:
    nodes: int
    node_rank: int
    procs_per_node: int
    host: str
    port: int

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node


def group_from_env(env: Mapping[str, str], nodes: int, procs_per_node: int) -> Group:
    """The group this node belongs to; the settings' shape unless the environment says otherwise."""
    return Group(int(env.get(ENV_NNODES) or nodes), int(env.get(ENV_INDEX) or 0),
                 int(env.get(ENV_NPROC_PER_NODE) or procs_per_node), env.get(ENV_RDZV_HOST) or "127.0.0.1",
                 int(env.get(ENV_RDZV_PORT) or RDZV_PORT))


def torchrun(group: Group, program: list[str], python: str = sys.executable) -> list[str]:
    """`torchrun` for this node running `program` (`-m module args` or `script args`): a static
    rendezvous at node 0, no in-place restarts (a failed worker fails the node, and the executor
    restarts the whole group from the latest checkpoint)."""
    return [python, "-m", "torch.distributed.run", f"--nnodes={group.nodes}", f"--node-rank={group.node_rank}",
            f"--nproc-per-node={group.procs_per_node}", f"--master-addr={group.host}",
            f"--master-port={group.port}", "--max-restarts=0", *program]


def accelerate_launch(group: Group, program: list[str], mixed_precision: str) -> list[str]:
    """`accelerate launch` with the same shape, for trainers written for it (Difix3D's
    `train_difix.py`): `program` is the script and its arguments."""
    return ["accelerate", "launch", f"--num_machines={group.nodes}", f"--machine_rank={group.node_rank}",
            f"--num_processes={group.world_size}", f"--main_process_ip={group.host}",
            f"--main_process_port={group.port}", f"--mixed_precision={mixed_precision}",
            *(["--multi_gpu"] if group.world_size > 1 else []), *program]


def strangers(group_ids: list[str], mine: str) -> list[int]:
    """Ranks whose group id (`GENFAB_GROUP_ID`, gathered from every worker) is not this worker's:
    a process that reached this rendezvous from another group, or a node of an older attempt."""
    return [rank for rank, other in enumerate(group_ids) if other != mine]
