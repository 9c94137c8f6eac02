"""Runs of the ledger stage (tests/fixtures/ledger_stage.py: a stdlib custom stage, fast, no models) through
`genfab run`: its DatasetJob, its inputs, the status it leaves, where it writes (`file://` and `s3://`),
and the CLI as a user runs it in a folder of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from genfab.storage import S3Settings, Storage, open_storage
from tests.helpers import ROOT
from tests.storage.s3 import BUCKET

LEDGER = ROOT / "tests" / "fixtures" / "ledger_stage.py"


def job(name: str, output: str, inputs: Path, *, continue_on_error: bool = True, shard_size: int = 2,
        extra_stage: bool = True, **spec: Any) -> dict[str, Any]:
    custom: list[dict[str, Any]] = [
        {"name": "segment", "image": "example.org/ledger:1", "command": ["python", str(LEDGER)]}]
    if extra_stage:
        custom.append({"name": "digest", "image": "example.org/ledger:1", "command": ["python", str(LEDGER)],
                       "after": ["segment"]})
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": name},
            "spec": {"type": "relighting", "output": output, "shardSize": shard_size,
                     "continueOnError": continue_on_error,
                     "onlyStages": ["segment", "digest"] if extra_stage else ["segment"],
                     "relighting": {"input": {"uri": f"file://{inputs}"}}, "customStages": custom, **spec}}


def inputs(tmp_path: Path, count: int, bad: tuple[int, ...] = ()) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir(exist_ok=True)
    for i in range(count):
        (folder / f"img_{i:03d}.png").write_bytes(b"FAIL" if i in bad else f"pixels {i}".encode())
    return folder


def status(run: Storage) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(run.read_bytes("_genfab/status.json"))["status"]
    return doc


@pytest.fixture(params=["file", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Storage]]:
    if request.param == "file":
        uri = f"file://{tmp_path}/out"
        yield uri, {}, open_storage(uri)
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    env = {"GENFAB_S3_ENDPOINT": endpoint, "GENFAB_S3_ADDRESSING_STYLE": "path", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test-secret"}
    uri = f"s3://{BUCKET}/runner-{tmp_path.name}"
    yield uri, env, open_storage(uri, S3Settings.from_env(env))


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def ledger_job(folder: Path, inputs: Path, **spec: Any) -> Path:
    """A DatasetJob whose `segment` stage is the stdlib ledger stage (fast, no models)."""
    doc = {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "bad-input"},
           "spec": {"type": "relighting", "output": f"file://{folder}/out", "onlyStages": ["segment"],
                    "relighting": {"input": {"uri": f"file://{inputs}"}},
                    "customStages": [{"name": "segment", "image": "example.org/ledger:1",
                                      "command": ["python", str(LEDGER)]}], **spec}}
    return write(folder, "job.yaml", yaml.safe_dump(doc))


def images(folder: Path, names: dict[str, bytes]) -> Path:
    for name, data in names.items():
        write(folder / "in", name, data)
    return folder / "in"


def genfab(folder: Path, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    tmp = folder / ".tmp"
    tmp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k != "KUBECONFIG" and not k.startswith(("AWS_", "GENFAB_S3_", "GENFAB_SECRETS"))}
    env |= {"PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), "HOME": str(folder / ".home"), "COLUMNS": "200",
            **(extra or {})}
    return subprocess.run([sys.executable, "-m", "genfab.cli.main", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)
