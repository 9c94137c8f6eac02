"""`genfab run` never writes one resource's record over another's: a second resource pointed at a
copied or mistyped output is refused with one line (exit 2) and the output is left as it was; with
`--force` it takes the output over and the old record stays beside the new one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from tests.storage.ledger import genfab, images, ledger_job


def _named(job: Path, name: str) -> Path:
    doc = yaml.safe_load(job.read_text())
    doc["metadata"]["name"] = name
    path = job.with_name(f"{name}.yaml")
    path.write_text(yaml.safe_dump(doc))
    return path


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "logs" not in p.parts and p.name != "lease.json"}


def test_another_resources_output_is_refused_and_taken_over_only_when_asked(tmp_path: Path) -> None:
    first = ledger_job(tmp_path, images(tmp_path, {"a.png": b"x", "b.png": b"y"}))
    done = genfab(tmp_path, "run", str(first))
    assert done.returncode == 0, done.stderr
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "out", copy)  # `cp -a` of a finished output, as a user makes one
    before = _tree(copy)

    other = _named(first, "another")
    refused = genfab(tmp_path, "run", str(other), "--out", copy.as_uri())
    assert refused.returncode == 2, refused.stdout + refused.stderr
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and "holds the record of DatasetJob/bad-input, not DatasetJob/another's" in line
    assert "--force" in line and "Traceback" not in refused.stderr
    assert _tree(copy) == before  # nothing written: not the status, not the summary, not the report

    forced = genfab(tmp_path, "run", str(other), "--out", copy.as_uri(), "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "took over the output from DatasetJob/bad-input: its record is kept in _genfab/taken-over/" in forced.stdout
    status = json.loads((copy / "_genfab/status.json").read_text())
    assert status["metadata"]["name"] == "another"
    (kept,) = (copy / "_genfab/taken-over").iterdir()
    assert kept.name.startswith("DatasetJob-bad-input-")
    assert (kept / "status.json").read_bytes() == before["_genfab/status.json"]
    assert (kept / "summary.json").read_bytes() == before["_genfab/summary.json"]

    again = genfab(tmp_path, "run", str(other), "--out", copy.as_uri())  # its own now: no refusal
    assert again.returncode == 0, again.stderr
