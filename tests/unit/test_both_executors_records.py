"""The operator and `genfab run` end a run with the same records: for one plan and one outcome (the same
shard reports, the same stage times), `summary.json`, `dropped_samples.csv` and a SceneJob's
`batch_summary.json` are byte-identical but for the two fields that say which executor wrote them. The
operator's rows come from the tally it folded while the run went (`status.tally`), the runner's from the
reports it holds: that they agree is what this checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genfab.api import parse_resource
from genfab.inventory import FailedSample, ShardReport, write_report
from genfab.local.runner import LocalRunner
from genfab.operator.run_end import write_run_end
from genfab.planner import plan
from genfab.sequencing.summary import stage_seconds
from genfab.status import tally
from genfab.storage.local import FileStorage

EXECUTOR_FIELDS = ("executor", "statusUri")


def relighting(out: Path) -> dict[str, Any]:
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "same", "namespace": "lab"},
            "spec": {"type": "relighting", "output": f"file://{out}", "continueOnError": True,
                     "relighting": {"input": {"uri": f"file://{out}-in"},
                                    "segmentation": {"backends": ["classical"]},
                                    "degradation": {"softShading": {"normals": "classical"}}}}}


def scenejob(out: Path) -> dict[str, Any]:
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "same", "namespace": "lab"},
            "spec": {"pipeline": "vistadream", "input": {"image": f"file://{out}-in/a.png"}, "output": f"file://{out}",
                     "continueOnError": True, "onlyStages": ["depth"], "vistadream": {"depthBackend": "depth-pro"},
                     "models": {"uri": f"file://{out}-models"}}}


def reports_of(stage: str, config_hash: str, shards: int) -> dict[int, ShardReport]:
    """Per shard: two committed samples (one reused), one dropped with a reason, timings and a producer."""
    return {i: ShardReport(stage=stage, config_hash=config_hash, index=i, shards=shards, total=3, state="succeeded",
                           succeeded=[f"s{3 * i:03d}", f"s{3 * i + 1:03d}"], reused=1,
                           seconds={f"s{3 * i:03d}": 0.5 + i}, produced_by={"classical": 1},
                           failed=[FailedSample(f"s{3 * i + 2:03d}", "BadInput", f"unreadable, shard {i}")])
            for i in range(shards)}


def finish(tmp_path: Path, doc: dict[str, Any]) -> tuple[Path, Path]:
    """The same outcome written by the local runner's writer into local/ and the operator's into cluster/."""
    resource = parse_resource(doc)
    (tmp_path / "local-models/apple/DepthPro-hf").mkdir(parents=True)  # where the depth stage would load it
    (tmp_path / "local-models/apple/DepthPro-hf/config.json").write_text("{}")
    runner = LocalRunner(resource, plan(resource), workers=1, log_dir=tmp_path / "logs")
    reports = {}
    for run in runner.stages.values():
        if run.state == "skipped":
            continue
        reports[run.stage.name] = run.reports = reports_of(run.stage.name, run.stage.config_hash, 2)
        run.samples, run.state = 6, "finished"
        run.start_time, run.completion_time = "2026-11-27T10:00:00Z", "2026-11-27T10:00:08Z"
    status = runner._write_status()
    for run in runner.stages.values():  # the runner's own clock, as the status times say
        stage = next(s for s in status.stages if s.name == run.stage.name)
        run.seconds = stage_seconds(stage)
    runner._write_summary(status)
    # The operator's status: the same, with each stage's tally folded as its progress reader folds it
    folded = status.model_copy(update={"stages": [s.model_copy(update={
        "tally": tally.fold(tally.start("uid"), reports.get(s.name, {}))}) for s in status.stages]})
    cluster = tmp_path / "cluster"
    store = FileStorage(f"file://{cluster}", cluster)
    for stage_reports in reports.values():  # where the shards wrote them, read back once at the end
        for report in stage_reports.values():
            write_report(store, report)
    write_run_end(store, runner.plan, folded, resource.spec, json.loads(
        (Path(runner.plan.output_uri.removeprefix("file://")) / "_genfab/summary.json").read_text())["finishedAt"])
    return Path(runner.plan.output_uri.removeprefix("file://")), cluster


@pytest.mark.parametrize("doc", [relighting, scenejob], ids=["DatasetJob relighting", "SceneJob vistadream depth"])
def test_both_executors_write_the_same_records_for_the_same_outcome(tmp_path: Path, doc: Any) -> None:
    local, cluster = finish(tmp_path, doc(tmp_path / "local"))
    mine, theirs = (json.loads((root / "_genfab/summary.json").read_text()) for root in (local, cluster))
    assert (mine["executor"], theirs["executor"]) == ("local", "operator")
    for summary, root in ((mine, local), (theirs, cluster)):  # (the operator wrote the same URIs into cluster/)
        for name in EXECUTOR_FIELDS:
            summary.pop(name)
        (root / "compared.json").write_text(json.dumps(summary, indent=2))
    assert (local / "compared.json").read_text() == (cluster / "compared.json").read_text()
    assert mine["dropped"] == 2 * len([s for s in mine["stages"] if s["phase"] != "Skipped"]) > 0
    assert (local / "batch_summary.json").exists() == (doc is scenejob)  # a batch of scenes: the lab's summary
    for record in ("_genfab/dropped_samples.csv", "batch_summary.json"):
        assert (local / record).exists() == (cluster / record).exists()
        if (local / record).exists():
            assert (local / record).read_bytes() == (cluster / record).read_bytes(), record
