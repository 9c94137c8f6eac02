"""`genfab status` and `genfab logs`' formatting (pure)."""

from __future__ import annotations

import json

import pytest

from genfab.api.status_document import StatusDocument
from genfab.api.summary import RunSummary
from genfab.cli.follow import log_dir, log_line, output_uri, status_lines


@pytest.mark.parametrize(("raw", "shown"), [
    (json.dumps({"ts": "2026-11-25T03:57:41.123Z", "level": "info", "msg": "shard starts", "stage": "segment",
                 "shard": 0, "shards": 1, "hash": "ab", "samples": 4}),
     "03:57:41 segment[0] info    shard starts  samples=4"),
    (json.dumps({"ts": "x", "level": "error", "msg": "bad input: no such file", "stage": "albedo", "shard": 2,
                 "exit": 42}), "x albedo[2] error   bad input: no such file  exit=42"),
    (json.dumps({"ts": "2026-11-25T00:00:00Z", "level": "info", "msg": "m", "extra": {"a": 1}}),
     '00:00:00 ?[?] info    m  extra={"a": 1}'),
    ("--- attempt 2 at 2026-11-25T03:57:40Z\n", "--- attempt 2 at 2026-11-25T03:57:40Z"),
    ("Traceback (most recent call last):", "Traceback (most recent call last):"),
    ('["not", "a record"]', '["not", "a record"]'),
])
def test_a_log_record_reads_as_one_line(raw: str, shown: str) -> None:
    assert log_line(raw) == shown


def test_the_status_says_each_stage_what_waits_and_where_the_data_is() -> None:
    doc = {"kind": "SceneJob", "metadata": {"name": "we"}, "status": {
        "phase": "Running", "progress": "1/2", "currentStage": "scaffold",
        "outputs": {"root": "s3://b/we"},
        "conditions": [{"type": "AwaitingSelection", "status": "True", "message": "1 sample(s) await a choice",
                        "reason": "Waiting", "lastTransitionTime": "2026-11-28T00:00:00Z"},
                       {"type": "Running", "status": "True", "message": "stage scaffold: 1/2",
                        "reason": "StageRunning", "lastTransitionTime": "2026-11-28T00:00:00Z"}],
        "stages": [{"name": "scaffold", "phase": "Succeeded", "samples": {"total": 2, "succeeded": 2, "failed": 0},
                    "producedBy": {"flux": 2}, "gpuSeconds": 412.4},
                   {"name": "expansion", "phase": "Failed", "reason": "NoProgress", "message": "shard 0 stuck",
                    "samples": {"total": 2, "succeeded": 0, "failed": 2}},
                   {"name": "gaussians", "phase": "Running", "samples": {"total": 40, "succeeded": 10, "failed": 0},
                    "gpuSeconds": 1200.0, "etaSeconds": 3900.0}]}}
    lines = status_lines(StatusDocument.model_validate(doc), None, "s3://b/we")
    assert lines[0] == "SceneJob/we: Running  (progress 1/2, stage scaffold)"
    assert lines[1].split() == ["stage", "phase", "done", "failed", "GPU-s", "ETA", "note"]
    assert lines[2].split() == ["scaffold", "Succeeded", "2/2", "0", "412", "-", "flux:", "2"]
    assert lines[3].split()[:6] == ["expansion", "Failed", "0/2", "2", "-", "-"]
    assert lines[4].split() == ["gaussians", "Running", "10/40", "0", "1200", "1", "h", "05", "min"]
    assert lines[3].endswith("NoProgress: shard 0 stuck")
    assert "AwaitingSelection: 1 sample(s) await a choice" in lines and not any(x.startswith("Running:") for x in lines)
    assert lines[-2:] == ["data: s3://b/we", "logs: genfab logs s3://b/we"]
    summary = RunSummary.model_validate({
        "dropped": 2, "droppedSamplesCsv": "s3://b/we/_genfab/dropped_samples.csv",
        "summaryUri": "s3://b/we/_genfab/summary.json",
        "stages": [{"name": "expansion", "dropped": {"NoFrames": {"count": 2, "examples": ["a", "b"]}},
                    "gpuHours": 0.5, "gpuSecondsPerSample": 900.0, "droppedGpuHours": 0.5},
                   {"name": "gaussians"}], "gpuHours": 0.5})
    done = status_lines(StatusDocument.model_validate({**doc, "status": {**doc["status"], "phase": "Failed"}}), summary,
                        "s3://b/we")
    assert done[-4:] == ["dropped: 2 sample(s) in s3://b/we/_genfab/dropped_samples.csv",
                         "  expansion: 2 NoFrames (e.g. a, b)",
                         "cost: 0.5 GPU-hours: expansion 0.5 (900 GPU-s/sample, dropped 0.5)",
                         "summary: s3://b/we/_genfab/summary.json"]


def test_where_a_runs_logs_are(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert output_uri(str(tmp_path)) == tmp_path.as_uri() and output_uri("s3://b/x/") == "s3://b/x"
    assert log_dir(tmp_path.as_uri(), "r") == tmp_path / "_genfab" / "logs"
    assert str(log_dir("s3://b/x", "r")) == "genfab-runs/.logs/r"
