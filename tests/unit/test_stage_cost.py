"""What a stage costs while it runs and after: GPU-seconds from its shard reports' running times (bounded:
a report is the tenant's Pod's to write), the ETA from its measured rate, the summary's GPU-hours per
stage and per sample with what dropped samples cost, and the operator's GPU-seconds counter."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from genfab.api.status import ResourceStatus, SampleCounts, StageStatus
from genfab.inventory import FailedSample, ShardReport
from genfab.inventory.reports import MAX_RUN_SECONDS
from genfab.operator.decide import Decision
from genfab.operator.metrics import OperatorMetrics
from genfab.operator.reconcile_metrics import record_reconcile
from genfab.sequencing.summary import stage_row
from genfab.status import StageObservation, build_status, tally
from genfab.status.cost import eta_seconds, gpu_seconds, report_seconds, shard_seconds
from tests.unit.shared import example_plan

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def report(index: int, seconds: float, corrupt: bool = False, failed: int = 0, earlier: float = 0.0
           ) -> ShardReport:
    r = ShardReport("expansion", "h" * 64, index, 8, state="succeeded", succeeded=[f"s{index}"],
                    failed=[FailedSample(f"f{index}-{i}", "NoFrames") for i in range(failed)], corrupt=corrupt,
                    earlier_seconds=earlier)
    r.started_at, r.updated_at = 1_000.0, 1_000.0 + seconds
    return r


@pytest.mark.parametrize("seconds, earlier, counted", [
    (12.5, 0.0, 12.5), (0.0, 0.0, 0.0), (-5.0, 0.0, 0.0), (math.inf, 0.0, 0.0), (math.nan, 0.0, 0.0),
    (1e12, 0.0, MAX_RUN_SECONDS),
    (12.5, 30.0, 42.5),  # a retried shard: its earlier attempts count too
    (12.5, -30.0, 12.5), (12.5, math.inf, 12.5), (12.5, 1e12, MAX_RUN_SECONDS)])
def test_a_reports_seconds_are_bounded(seconds: float, earlier: float, counted: float) -> None:
    assert report_seconds(report(0, seconds, earlier=earlier)) == counted


def test_corrupt_reports_count_nothing_and_cpu_stages_have_no_gpu_seconds() -> None:
    assert shard_seconds([report(0, 10), report(1, 20), report(2, 99, corrupt=True)]) == 30
    assert gpu_seconds(30.0, 2) == 60.0 and gpu_seconds(30.0, 0) is None


@pytest.mark.parametrize("total, done, minutes, eta", [
    (40, 10, 10, 1800.0),   # 10 samples in 10 min: 30 left take 30 min
    (40, 0, 10, None),      # no rate before the first sample
    (40, 40, 10, None),     # done
    (40, 10, 0, None),      # no time has passed
])
def test_eta(total: int, done: int, minutes: int, eta: float | None) -> None:
    assert eta_seconds(total, done, T0, T0 + timedelta(minutes=minutes)) == eta
    assert eta_seconds(total, done, None, T0) is None


def test_the_tally_adds_each_shards_seconds_once() -> None:
    t = tally.fold(tally.start("uid"), {0: report(0, 10.0), 1: report(1, 20.0)})
    assert t.shard_seconds == 30.0
    again = tally.fold(t, {1: report(1, 20.0), 2: report(2, 5.0)})  # shard 1 is read already
    assert again.shard_seconds == 35.0


def test_the_status_carries_gpu_seconds_and_an_eta_only_while_running() -> None:
    def stage(state: str, done: int) -> StageStatus:
        obs = StageObservation("expansion", "h", "file:///o", state, samples_total=40,  # type: ignore[arg-type]
                               samples_succeeded=done, shards_total=5, shards_active=1,
                               start_time="2026-11-28T12:00:00Z",
                               completion_time="2026-11-28T13:00:00Z" if state == "finished" else None,
                               shards_succeeded=5 if state == "finished" else 0, gpu_seconds=1234.5)
        st = build_status([obs], continue_on_error=False, generation=1, now="2026-11-28T12:10:00Z")
        return st.stages[0]
    running = stage("running", 10)
    assert (running.phase, running.gpu_seconds, running.eta_seconds) == ("Running", 1234.5, 1800.0)
    done = stage("finished", 40)
    assert (done.phase, done.gpu_seconds, done.eta_seconds) == ("Succeeded", 1234.5, None)


def test_the_summary_row_has_gpu_hours_per_sample_and_the_cost_of_drops() -> None:
    plan = example_plan("scenejob-worldexplorer-tiny.yaml")
    read = tally.of_reports({0: report(0, 100.0, failed=1), 1: report(1, 100.0, failed=1)})
    status = StageStatus(name="expansion", samples=SampleCounts(total=4, succeeded=2, failed=2), gpu_seconds=7200.0)
    row = stage_row(plan.stage("expansion"), status, read, seconds=100.0)
    # 7200 GPU-s over 4 samples made or dropped: 1800 each; the 2 dropped cost 1 GPU-hour
    assert (row.gpu_hours, row.gpu_seconds_per_sample, row.dropped_gpu_hours) == (2.0, 1800.0, 1.0)
    cpu = stage_row(plan.stage("expansion"), status.model_copy(update={"gpu_seconds": None}), read, seconds=1.0)
    assert (cpu.gpu_hours, cpu.gpu_seconds_per_sample, cpu.dropped_gpu_hours) == (None, None, None)


def test_the_operator_counts_gpu_seconds_per_resource_and_stage() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    plan = example_plan("scenejob-worldexplorer-tiny.yaml")
    key = ("SceneJob", "lab", "scenes")

    def status(used: float | None, config_hash: str = "h") -> ResourceStatus:
        return ResourceStatus(phase="Running", stages=[StageStatus(name="expansion", config_hash=config_hash,
                                                                   phase="Running", gpu_seconds=used)])

    def counted() -> float | None:
        return metrics.registry.get_sample_value("genfab_stage_gpu_seconds_total", {
            "kind": "SceneJob", "namespace": "lab", "name": "scenes", "stage": "expansion"})
    record_reconcile(metrics, key, plan, Decision(), None, status(100.0))
    record_reconcile(metrics, key, plan, Decision(), status(100.0), status(250.0))
    record_reconcile(metrics, key, plan, Decision(), status(250.0), status(250.0))
    assert counted() == 250.0
    record_reconcile(metrics, key, plan, Decision(), status(250.0), status(None))  # nothing read yet: no decrease
    record_reconcile(metrics, key, plan, Decision(), status(250.0), status(40.0, "other"))  # a new config hash
    assert counted() == 290.0


def test_the_reports_cost_table() -> None:
    from genfab.api.summary import RunSummary
    from genfab.report.sections.run import cost_table

    summary = RunSummary.model_validate({"gpuHours": 2.5, "stages": [
        {"name": "scaffold", "gpuHours": 1.5, "gpuSecondsPerSample": 54.0, "droppedGpuHours": 0.0},
        {"name": "organize"},
        {"name": "expansion", "gpuHours": 1.0, "gpuSecondsPerSample": 36.0, "droppedGpuHours": 0.01}]})
    table = cost_table(summary)
    assert table.rows == (("scaffold", "1.500", "54.00", "0.000"), ("expansion", "1.000", "36.00", "0.010"))
    assert table.note.startswith("2.500 GPU-hours in all")
    cpu = cost_table(RunSummary.model_validate({"stages": [{"name": "organize"}]}))
    assert cpu.rows == () and cpu.note == "every stage ran on CPUs: no GPU time"


def test_a_retried_shard_carries_its_earlier_attempts_seconds(tmp_path: Path) -> None:
    """The Pod side: an attempt that finds the report an earlier attempt left adds what that one ran
    (its own earlier attempts included); a first attempt, or one after an unreadable report, adds none."""
    from genfab.contract import StageConfig
    from genfab.contract.config import ResourceRef
    from genfab.contract.names import report_key
    from genfab.inventory import write_report
    from genfab.stages.runtime.context import StageContext
    from genfab.stages.runtime.progress import ProgressReporter
    from genfab.storage.local import FileStorage

    cfg = StageConfig(resource=ResourceRef(kind="DatasetJob", name="d"), pipeline="relighting", stage="segment",
                      family="cv", config_hash="h" * 64, run_uri=f"file://{tmp_path}/out",
                      output_uri=f"file://{tmp_path}/out/s1", input_uris=(f"file://{tmp_path}/in",))
    env = {"GENFAB_TERMINATION_LOG": str(tmp_path / "termination")}
    first = ProgressReporter(StageContext(cfg, 1, 4, env=env))
    first.start(3)
    assert first.report.earlier_seconds == 0.0
    crashed = ShardReport("segment", "h" * 64, 1, 4, earlier_seconds=40.0)
    crashed.started_at = 1_000.0
    run = FileStorage(f"file://{tmp_path}/out", tmp_path / "out")
    write_report(run, crashed)  # written now: its span is now - 1000 s
    second = ProgressReporter(StageContext(cfg, 1, 4, env=env))
    second.start(3)
    assert second.report.earlier_seconds == pytest.approx(crashed.run_seconds, abs=1.0)
    assert second.report.earlier_seconds > 40.0
    (tmp_path / "out" / report_key("segment", "h" * 64, 1)).write_text("{not json")
    third = ProgressReporter(StageContext(cfg, 1, 4, env=env))
    third.start(3)
    assert third.report.earlier_seconds == 0.0


@pytest.mark.parametrize("now, before, used", [
    (150.0, None, 150.0), (None, 150.0, 150.0), (None, None, None),
    (100.0, 150.0, 150.0),  # a finished shard left the running reports before its final report was read
    (160.0, 150.0, 160.0)])
def test_gpu_seconds_used_never_go_down(now: float | None, before: float | None, used: float | None) -> None:
    from genfab.operator.decide import _used

    assert _used(now, before) == used
