"""The built-in trainer's workers refuse a rendezvous shared with another process group: two real
gloo workers (accelerate, as torchrun would start them) with the same or different group ids."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("accelerate")

PROBE = """
import sys
import torch.distributed as dist
from accelerate import Accelerator
from genfab.stages.tuning.trainer import _check_group
acc = Accelerator(cpu=True)
try:
    _check_group(acc)
    code = 0
except RuntimeError as exc:
    print(exc)
    code = 3
dist.destroy_process_group()  # as the trainer's end_training does: no gloo teardown at interpreter exit
sys.exit(code)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("ids", "codes"), [(("g", "g"), [0, 0]), (("g", "intruder"), [3, 3])])
def test_workers_check_their_peers_group_before_training(ids: tuple[str, str], codes: list[int]) -> None:
    port = str(free_port())
    workers = [subprocess.Popen([sys.executable, "-c", PROBE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, env={**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
                                                "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
                                                "GENFAB_GROUP_ID": group})
               for rank, group in enumerate(ids)]
    results = [(w.wait(timeout=120), w.stdout.read() if w.stdout else "") for w in workers]
    assert [code for code, _ in results] == codes, results
    if codes[0]:
        assert "ranks [1] joined this rendezvous from another process group (not 'g')" in results[0][1]
