"""What several unit test modules build the same way: a planned worldexplorer SceneJob, a stage Job as
the API server would show it, the operator settings and owner the builders are tested with, a plan
from an example, a PNG header that claims any size. One place, so a test module never imports another."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from genfab.api import parse_resource
from genfab.operator.objects import Owner
from genfab.operator.settings import OperatorSettings
from genfab.planner import Plan, plan
from tests.helpers import load_example

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
"""The clock of the decision tests."""
SETTINGS = OperatorSettings(images={f: f"registry.test/genfab-{f}:1" for f in ("cv", "scene", "segment", "diffusion")},
                            gpu_resource="amd.com/gpu")
OWNER = Owner("genfab.dev/v1alpha1", "SceneJob", "x" * 40, "lab", "uid-1")
VD = "scenejob-vistadream.yaml"

Doc = dict[str, Any]


def worldexplorer_plan(**spec: Any) -> tuple[Any, Plan]:
    """A worldexplorer SceneJob `lab/s` with `spec` added, and its plan."""
    r = parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "s", "namespace": "lab"},
        "spec": {"pipeline": "worldexplorer", "input": {"image": "s3://lab-in/a.png"}, "output": "s3://lab-out/r",
                 **spec}})
    return r, plan(r)


def stage_job(p: Plan, stage: str, state: str = "running", hash_: str | None = None, suspend: bool = False
              ) -> dict[str, Any]:
    """The Job of `stage` of `p` (one shard) as the watch shows it: running, done or failed."""
    s = p.stage(stage)
    status: dict[str, Any] = {"active": 1, "ready": 1, "startTime": "2026-11-22T11:59:00Z"}
    if state == "done":
        status = {"completedIndexes": "0", "conditions": [{"type": "Complete", "status": "True"}]}
    if state == "failed":
        status = {"failedIndexes": "0", "conditions": [{"type": "Failed", "status": "True", "reason": "FailedIndexes"}]}
    return {"metadata": {"name": f"s-{stage}-{hash_ or s.short_hash}", "annotations": {"genfab.dev/samples": "1"},
                         "labels": {"genfab.dev/stage": stage, "genfab.dev/config-hash": hash_ or s.short_hash}},
            "spec": {"completions": 1, "suspend": suspend}, "status": status}


def example_plan(example: str, mutate: Callable[[Doc], None] = lambda d: None,
                 inventory: dict[str, int] | None = None) -> Plan:
    """The plan of `examples/<example>`, changed by `mutate` first."""
    doc = load_example(example)
    mutate(doc)
    return plan(parse_resource(doc), inventory)


def png_header(width: int, height: int) -> bytes:
    """A PNG that is only its signature, IHDR (8-bit RGB) and IEND: what a bomb's first bytes say."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))
