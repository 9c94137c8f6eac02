"""Why a local shard failed, in one line: the stage's termination message, else its log's last error
(what reached the console as `bad input; log: …` before, the reason itself staying in the log)."""

from __future__ import annotations

import json

import pytest

from genfab.local.shard_failures import failure_reason

CUDA = "bad input: stage expansion of pipeline worldexplorer needs a CUDA GPU (gsplat); none is visible here"
JSON_ERROR = json.dumps({"ts": "t", "level": "error", "msg": CUDA, "stage": "expansion"})
TRACEBACK = """--- attempt 1 at 2026-11-23T10:00:00Z
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
ModuleNotFoundError: No module named 'torch'
"""


@pytest.mark.parametrize(("termination", "log", "expected"), [
    (json.dumps({"state": "failed", "message": CUDA}), "", CUDA),  # what the stage said
    (None, f"--- attempt 1\n{JSON_ERROR}\n" + json.dumps({"level": "info", "msg": "shard done"}), CUDA),
    (json.dumps({"state": "failed", "message": ""}), f"--- attempt 1\n{JSON_ERROR}\n", CUDA),
    (None, TRACEBACK, "ModuleNotFoundError: No module named 'torch'"),  # died before the runtime started
    (None, "--- attempt 1\ngenfab.stages: missing Python package 'torch' for stage scaffold of pipeline "
           "worldexplorer: install genfab[diffusion]\n",
     "missing Python package 'torch' for stage scaffold of pipeline worldexplorer: install genfab[diffusion]"),
    (None, f"--- attempt 1\n{JSON_ERROR}\n--- attempt 2\nKilled\n", ""),  # only the latest attempt counts
    ("not json", "", ""),
    (None, "", ""),
])
def test_the_reason_is_read_from_the_termination_message_or_the_log(termination: str | None, log: str,
                                                                      expected: str) -> None:
    assert failure_reason(termination, log) == expected


def test_a_long_reason_is_one_short_line() -> None:
    reason = failure_reason(json.dumps({"message": "x\n" * 400}), "")
    assert "\n" not in reason and len(reason) == 300 and reason.endswith("…")
