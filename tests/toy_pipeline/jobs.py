"""A DatasetJob of the toy pipelines (`checksums`, `checksum-chain`) over a folder of input files, written
where `genfab run` reads it; the tests that run them and the env that loads them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import ROOT

MODULES = "tests.toy_pipeline.pipeline,tests.toy_pipeline.chain,tests.toy_pipeline.shared"
BLOCKS = {"checksums": "checksums", "checksum-chain": "chain", "checksum-shared": "shared"}
"""Each toy pipeline's spec block (one per pipeline)."""
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "GENFAB_PIPELINES": MODULES}
"""`genfab run`'s environment for the toy pipelines."""


def toy_job(tmp: Path, kind: str, write_inputs: Any, **spec: Any) -> Path:
    """The job file (`tmp/job.yaml`, output `tmp/out`) of toy pipeline `kind` over `tmp/in`, which
    `write_inputs(folder)` fills; `spec` adds to or replaces its spec's fields."""
    inputs = tmp / "in"
    inputs.mkdir()
    write_inputs(inputs)
    doc = {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "toy"},
           "spec": {"type": kind, "output": f"file://{tmp}/out", BLOCKS[kind]: {"uri": f"file://{inputs}"}, **spec}}
    path = tmp / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def files(contents: list[bytes]) -> Any:
    """Fills a folder with `f000.txt`, `f001.txt`, ... holding `contents`."""
    def write(folder: Path) -> None:
        for i, data in enumerate(contents):
            (folder / f"f{i:03d}.txt").write_bytes(data)
    return write
