"""The stage runtime in-process on file:// storage: resume, failure records, exit codes, reports."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from genfab.contract import EXIT_BAD_INPUT, EXIT_OK, EXIT_RETRYABLE, report_key
from genfab.inventory import InventoryError, ShardReport, discover_inputs
from genfab.stages.runtime import BadInput, Sample, SampleError, Stage, StageContext, load_context, main, sample_seed
from genfab.storage import StorageError, open_storage
from tests.helpers import stage_contract

HASH = "c" * 64


def contract(tmp_path: Path, files: dict[str, bytes], **extra: Any) -> dict[str, str]:
    """Input files + a stage config; returns the shard env."""
    for name, data in files.items():
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(data)
    fields = {"configHash": HASH, "inputUris": [f"file://{tmp_path}/in"], "selection": {"suffixes": [".png"]},
              "config": {"seed": 7}}
    return stage_contract(tmp_path, "toy", **{**fields, **extra})


class Toy(Stage):
    name = "toy"

    def __init__(self, fail_setup: Exception | None = None) -> None:
        self.processed: list[str] = []
        self.fail_setup = fail_setup
        self.setups = 0

    def setup(self, ctx: StageContext) -> None:
        self.setups += 1
        if self.fail_setup is not None:
            raise self.fail_setup

    def process(self, sample: Sample) -> None:
        data = sample.read_source()
        self.processed.append(sample.id)
        if data == b"bad":
            raise SampleError("Unreadable", "not an image")
        if data == b"boom":
            raise ValueError("unexpected pixel format")
        if data == b"outage":
            raise StorageError("write s3://b/x failed: ServiceUnavailable")
        sample.params["seed"] = sample.seed(7)
        sample.write(f"{sample.id}/out.txt", data.upper())


def report(tmp_path: Path) -> ShardReport:
    return ShardReport.from_json(open_storage(f"file://{tmp_path}/run").read_bytes(report_key("toy", HASH, 0)))


def test_failures_are_recorded_and_a_rerun_redoes_only_what_is_missing(tmp_path: Path) -> None:
    env = contract(tmp_path, {"a.png": b"aa", "b.png": b"bad", "c.png": b"cc", "d-e.png": b"boom",
                              "f.png": b"ff", "notes.txt": b"ignored"})
    stage = Toy()
    assert main(stage, env) == EXIT_OK
    assert stage.processed == ["a", "b", "c", "d-e", "f"]
    r = report(tmp_path)
    assert (r.state, r.total, sorted(r.succeeded), r.reused) == ("succeeded", 5, ["a", "c", "f"], 0)
    assert [(f.id, f.reason) for f in r.failed] == [("b", "Unreadable"), ("d-e", "ValueError")]
    marker = json.loads((tmp_path / "run/toy/a/_SUCCESS.json").read_text())
    assert marker["config_hash"] == HASH and set(marker["outputs"]) == {"a/out.txt"}
    assert marker["extra"]["params"]["seed"] == sample_seed(7, "a")
    assert json.loads((tmp_path / "termination.json").read_text())["failed"] == 2

    (tmp_path / "in/b.png").write_bytes(b"fixed")
    again = Toy()
    assert main(again, env) == EXIT_OK
    assert again.processed == ["b", "d-e"]  # committed samples are not redone
    r = report(tmp_path)
    assert (sorted(r.succeeded), r.reused, [f.id for f in r.failed]) == (["a", "b", "c", "f"], 3, ["d-e"])


def test_nothing_pending_skips_model_loading(tmp_path: Path) -> None:
    env = contract(tmp_path, {"a.png": b"aa"})
    assert main(Toy(), env) == EXIT_OK
    stage = Toy()
    assert main(stage, env) == EXIT_OK
    assert stage.setups == 0 and report(tmp_path).reused == 1


def test_a_changed_config_hash_redoes_committed_samples(tmp_path: Path) -> None:
    env = contract(tmp_path, {"a.png": b"aa"})
    assert main(Toy(), env) == EXIT_OK
    contract(tmp_path, {}, configHash="d" * 64)
    stage = Toy()
    assert main(stage, env) == EXIT_OK
    assert stage.processed == ["a"]


@pytest.mark.parametrize(("error", "code", "message"), [
    (BadInput("config.custom.margin must be below 0.5"), EXIT_BAD_INPUT, "bad input: config.custom.margin"),
    (RuntimeError("CUDA error: an illegal memory access"), EXIT_RETRYABLE, "RuntimeError: CUDA error"),
])
def test_setup_failures_map_to_exit_codes(tmp_path: Path, error: Exception, code: int, message: str) -> None:
    env = contract(tmp_path, {"a.png": b"aa"})
    assert main(Toy(fail_setup=error), env) == code
    r = report(tmp_path)
    assert r.state == "failed" and r.message.startswith(message)


def test_a_storage_outage_ends_the_shard_retryably_without_a_marker(tmp_path: Path) -> None:
    env = contract(tmp_path, {"a.png": b"aa", "b.png": b"outage", "c.png": b"cc"})
    stage = Toy()
    assert main(stage, env) == EXIT_RETRYABLE
    assert stage.processed == ["a", "b"]
    assert not (tmp_path / "run/toy/b/_SUCCESS.json").exists()


@pytest.mark.parametrize(("env_update", "config_update", "message"), [
    ({"JOB_COMPLETION_INDEX": "3"}, {}, "outside 0..0"),
    ({"GENFAB_SHARD_COUNT": "two"}, {}, "not an integer"),
    ({}, {"contract": 99}, "contract version 99"),
    ({"GENFAB_STAGE_CONFIG": "/nonexistent/stage.json"}, {}, "does not exist"),
])
def test_a_broken_contract_is_bad_input(tmp_path: Path, env_update: dict[str, str], config_update: dict[str, Any],
                                        message: str) -> None:
    env = {**contract(tmp_path, {"a.png": b"aa"}, **config_update), **env_update}
    with pytest.raises(BadInput, match=message):
        load_context(env)
    assert main(Toy(), env) == EXIT_BAD_INPUT


def test_missing_selected_ids_are_bad_input(tmp_path: Path) -> None:
    env = contract(tmp_path, {"a.png": b"aa"}, selection={"suffixes": [".png"], "ids": ["a", "zz"]})
    assert main(Toy(), env) == EXIT_BAD_INPUT
    assert "no input file" in report(tmp_path).message and "zz" in report(tmp_path).message


def test_discovery_suffixes_ids_limit_and_clashes(tmp_path: Path) -> None:
    store = open_storage(f"file://{tmp_path}")
    for key in ("b.PNG", "a.jpg", "sub/c.webp", "x.txt", "_genfab/status.json", ".hidden/d.png"):
        store.write_bytes(key, b"x")
    suffixes = (".png", ".jpg", ".webp")
    store.write_bytes("c.webp", b"x")
    assert [r.id for r in discover_inputs(store, suffixes)] == ["a", "b", "c"]  # files directly under the folder
    assert [r.source for r in discover_inputs(store, suffixes, limit=2)] == ["a.jpg", "b.PNG"]
    assert [r.id for r in discover_inputs(store, suffixes, ids=["c", "a"])] == ["a", "c"]
    store.write_bytes("a.png", b"y")  # two files, one stem: both are samples, named with their extension
    refs = discover_inputs(store, suffixes)
    assert [(r.id, r.source) for r in refs] == [("a.jpg", "a.jpg"), ("a.png", "a.png"), ("b", "b.PNG"), ("c", "c.webp")]
    store.write_bytes("a.png.jpg", b"z")  # its stem is another file's name: that is the one clash left
    with pytest.raises(InventoryError, match=r"share sample id 'a\.png'"):
        discover_inputs(store, suffixes)


def test_sample_seeds_are_stable_and_distinct() -> None:
    assert sample_seed(0, "img_001") == sample_seed(0, "img_001")
    assert len({sample_seed(0, f"img_{i}") for i in range(1000)} | {sample_seed(1, "img_1")}) == 1001


def test_pod_metrics_count_outcomes_and_time_samples() -> None:
    from genfab.stages.runtime.metrics import StageMetrics

    m = StageMetrics("albedo")
    m.sample("succeeded", 0.4)
    m.sample("succeeded", 2.0)
    m.sample("failed", 0.1, "Grayscale")
    m.sample("reused")
    m.model_load_seconds.set(3.5)
    value = m.registry.get_sample_value
    assert value("genfab_stage_samples_total", {"stage": "albedo", "outcome": "succeeded"}) == 2
    assert value("genfab_stage_samples_total", {"stage": "albedo", "outcome": "reused"}) == 1
    assert value("genfab_stage_sample_seconds_count", {"stage": "albedo"}) == 3
    assert value("genfab_stage_sample_seconds_bucket", {"stage": "albedo", "le": "0.5"}) == 2
    assert value("genfab_stage_model_load_seconds", {"stage": "albedo"}) == 3.5
    assert value("genfab_stage_sample_failures_total", {"stage": "albedo", "reason": "Grayscale"}) == 1


@pytest.mark.parametrize(("config", "message"), [
    ({"albedo": {"blend": {"min": 0.3, "max": 0.1}}, "seed": 0}, "config.albedo.blend.min: min must be <= max"),
    ({"albedo": {}, "seed": 0, "retinexScales": [1]}, "config.retinexScales: unknown field"),
    ({"albedo": {}}, "config.seed: Field required"),
])
def test_a_built_in_stage_gets_its_config_validated_once_with_the_field_named(
        tmp_path: Path, config: dict[str, Any], message: str) -> None:
    from genfab.stages.relighting.albedo_stage import ALBEDO

    env = stage_contract(tmp_path, "albedo", pipeline="relighting", config=config)
    stage = ALBEDO.stage()
    assert main(stage, env) == EXIT_BAD_INPUT
    reported = ShardReport.from_json(open_storage(f"file://{tmp_path}/run").read_bytes(report_key("albedo", HASH, 0)))
    assert message in reported.message and "AlbedoSettings" in reported.message
    assert not hasattr(stage, "pool") and stage.held is None  # setup never ran


def test_a_built_in_stage_reads_typed_settings(tmp_path: Path) -> None:
    from genfab.api.pipelines.relighting import AlbedoSettings
    from genfab.stages.runtime.loop import declared_settings, validated_settings

    ctx = load_context(stage_contract(tmp_path, "albedo", pipeline="relighting", config={"albedo": {}, "seed": 3}))
    from genfab.stages.relighting.albedo_stage import ALBEDO

    settings = validated_settings(ctx, declared_settings(ctx, ALBEDO.stage()))
    assert isinstance(settings, AlbedoSettings)
    assert settings.albedo.retinex_scales == [15.0, 80.0, 250.0] and settings.seed == 3  # the API's defaults
    assert declared_settings(ctx, Toy()) is None  # not the declared implementation: the raw config dict


def test_a_shard_loads_the_compile_cache_after_setup_and_stores_it_after_its_samples(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's order: models loaded (torch.compile wraps them, compiling at the first sample), then
    what earlier Pods compiled is loaded, then the first batch, then what this Pod compiled is stored
    (for the stage's Pods that start later), then the other batches."""
    from genfab.stages.runtime import loop

    events: list[str] = []

    class Recorder:
        def load(self) -> None:
            events.append("load")

        def save(self) -> None:
            events.append("save")

    class Recorded(Toy):
        def setup(self, ctx: StageContext) -> None:
            events.append("setup")

        def process(self, sample: Sample) -> None:
            events.append(f"sample {sample.id}")
            super().process(sample)

    seen: list[tuple[str, str]] = []

    def for_shard(storage: Any, stage: str, env: Any) -> Recorder:
        seen.append((storage.uri, stage))
        return Recorder()

    monkeypatch.setattr(loop.CompileCache, "for_shard", staticmethod(for_shard))
    env = contract(tmp_path, {"a.png": b"aa", "b.png": b"bb"})
    assert main(Recorded(), env) == EXIT_OK
    assert events == ["setup", "load", "sample a", "save", "sample b"]  # stored once the first batch compiled
    assert seen == [(f"file://{tmp_path}/run", "toy")]  # the run's storage, shared by the stage's Pods


class Closing(Toy):
    closes = 0

    def close(self) -> None:
        self.closes += 1


def worker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: list[str]) -> tuple[dict[str, str], int]:
    """The env of a warm worker of three shards whose feed (stdin) holds `lines`; the results pipe's read end."""
    env = contract(tmp_path, {"a.png": b"aa", "b.png": b"bb", "c.png": b"cc"}, shardSize=1)
    read, write = os.pipe()
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(line + "\n" for line in lines)))
    return {**env, "GENFAB_SHARD_COUNT": "3", "GENFAB_WORKER_FD": str(write)}, read


def results(read: int) -> list[dict[str, int]]:
    with os.fdopen(read) as f:
        return [json.loads(line) for line in f]


def test_a_warm_worker_loads_once_runs_each_shard_it_is_given_and_closes_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env, read = worker_env(tmp_path, monkeypatch, ['{"index": 2}', '{"index": 0}', '{"index": 1}'])
    stage = Closing()
    assert main(stage, env) == EXIT_OK
    assert (stage.setups, stage.closes, stage.processed) == (1, 1, ["c", "a", "b"])
    assert results(read) == [{"index": 2, "exit": 0}, {"index": 0, "exit": 0}, {"index": 1, "exit": 0}]
    run = open_storage(f"file://{tmp_path}/run")
    loads = {i: ShardReport.from_json(run.read_bytes(report_key("toy", HASH, i))).model_load_seconds for i in range(3)}
    assert loads[2] is not None and loads[0] is None and loads[1] is None  # paid by the first shard only


def test_a_warm_worker_stops_at_the_first_shard_that_fails_and_at_a_line_it_cannot_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env, read = worker_env(tmp_path, monkeypatch, ['{"index": 0}', '{"index": 7}', '{"index": 1}'])
    stage = Closing()
    assert main(stage, env) == EXIT_BAD_INPUT  # shard 7 of 3 is not a shard: nothing after it runs
    assert (stage.processed, stage.closes) == (["a"], 1)
    assert results(read) == [{"index": 0, "exit": 0}]
    env, read = worker_env(tmp_path, monkeypatch, ['{"index": 1}', '{"index": 2}'])
    (tmp_path / "in" / "b.png").write_bytes(b"outage")
    stage = Closing()
    assert main(stage, env) == EXIT_RETRYABLE
    assert stage.processed == ["b"] and results(read) == [{"index": 1, "exit": EXIT_RETRYABLE}]
