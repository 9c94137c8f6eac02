"""The records Pod (`python -m genfab.jobs.records`): a big run's per-sample records written as the
operator writes a small run's, the summary pointed at them; a bad request is one line and exit 42."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from genfab.api import parse_resource
from genfab.inventory import FailedSample, ShardReport, write_report
from genfab.jobs.records import main
from genfab.planner import plan
from genfab.sequencing.batch import batch_document
from genfab.sequencing.records import records_request
from genfab.sequencing.summary import dropped_csv
from genfab.storage.local import FileStorage


def scenejob(out: Path) -> dict[str, object]:
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "big", "namespace": "lab"},
            "spec": {"pipeline": "worldexplorer", "input": {"image": "s3://lab-in/a.png"}, "output": f"file://{out}",
                     "onlyStages": ["scaffold"]}}


def test_the_records_pod_writes_what_the_operator_writes_and_points_the_summary_at_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plan(parse_resource(scenejob(tmp_path / "out")))
    run = FileStorage(f"file://{tmp_path}/out", tmp_path / "out")
    stage = p.stage("scaffold")
    reports = {}
    for index in range(3):
        report = ShardReport(stage="scaffold", config_hash=stage.config_hash, index=index, shards=3, total=2,
                             state="succeeded", succeeded=[f"photorealistic/index_{2 * index:04d}"],
                             failed=[FailedSample(f"photorealistic/index_{2 * index + 1:04d}", "SampleError", "no,")])
        write_report(run, report)
        reports[index] = report
    run.write_bytes("_genfab/summary.json", json.dumps({"name": "big", "droppedSamplesCsv": None,
                                                        "perSampleRecords": "written by the records job"}).encode())
    request = records_request(p, "PartiallySucceeded", "2026-11-27T10:00:00Z")
    env = {"GENFAB_RECORDS": request.model_dump_json(by_alias=True), "GENFAB_TERMINATION_LOG": str(tmp_path / "t")}
    assert main(env) == 0
    written = (tmp_path / "out/_genfab/dropped_samples.csv").read_bytes()
    assert written == dropped_csv(p, {"scaffold": reports})[0]
    rows = list(csv.reader(io.StringIO(written.decode())))
    assert rows[1] == ["scaffold", "photorealistic/index_0001", "SampleError", "no,"] and len(rows) == 4
    batch = json.loads((tmp_path / "out/batch_summary.json").read_text())
    assert batch == json.loads(batch_document(p, {"scaffold": reports}, "PartiallySucceeded", "2026-11-27T10:00:00Z")
                               or b"")
    assert batch["counts"] == {"succeeded": 3, "failed": 3, "incomplete": 0}
    summary = json.loads((tmp_path / "out/_genfab/summary.json").read_text())
    assert summary["droppedSamplesCsv"] == f"file://{tmp_path}/out/_genfab/dropped_samples.csv"
    assert "perSampleRecords" not in summary
    assert "3 dropped sample(s) recorded" in (tmp_path / "t").read_text()


@pytest.mark.parametrize("request_json", ["", "{}", '{"kind": "SceneJob"}', "not json"])
def test_a_bad_request_is_one_line_and_exit_42(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               request_json: str) -> None:
    assert main({"GENFAB_RECORDS": request_json, "GENFAB_TERMINATION_LOG": str(tmp_path / "t")}) == 42
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genfab records: bad request in GENFAB_RECORDS:")
