"""`SampleStage`: a stage as three functions (load once, make a sample or a batch, say what made it) runs
through the same runtime as a `Stage` class: loaded once per process, committed samples skipped, drops
recorded per sample, what made each sample in its marker and the shard's report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genfab.contract import EXIT_BAD_INPUT, EXIT_OK, report_key
from genfab.inventory import ShardReport
from genfab.stages.runtime import BadInput, Sample, SampleError, SampleStage, StageContext, main
from genfab.storage import open_storage
from tests.helpers import stage_contract

HASH = "c" * 64


class Loaded:
    """What a toy worker holds from sample to sample."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.closed = False
        self.made: list[str] = []


def _contract(tmp_path: Path, files: dict[str, bytes], **fields: Any) -> dict[str, str]:
    (tmp_path / "in").mkdir(exist_ok=True)
    for name, data in files.items():
        (tmp_path / "in" / name).write_bytes(data)
    return stage_contract(tmp_path, "toy", inputUris=[f"file://{tmp_path}/in"], **{"config": {"suffix": "!"}, **fields})


def _report(tmp_path: Path) -> ShardReport:
    return ShardReport.from_json(open_storage(f"file://{tmp_path}/run").read_bytes(report_key("toy", HASH, 0)))


def _stage(held: list[Loaded], **kw: Any) -> SampleStage[Any, Loaded]:
    def load(settings: dict[str, Any], ctx: StageContext) -> Loaded:
        if settings.get("suffix") == "bad":
            raise BadInput("config.suffix: 'bad' is not allowed")
        held.append(Loaded(settings["suffix"]))
        return held[-1]

    def make(loaded: Loaded, sample: Sample) -> None:
        data = sample.read_source()
        loaded.made.append(sample.id)
        if data == b"poison":
            raise SampleError("Poisoned", "a poisoned sample")
        sample.write(f"{sample.id}/out.txt", data + loaded.suffix.encode())

    return SampleStage("toy", load, make, made_by=lambda loaded: f"suffixer:{loaded.suffix}",
                       close=lambda loaded: setattr(loaded, "closed", True), **kw)


def test_a_sample_stage_loads_once_makes_each_sample_and_records_what_made_it(tmp_path: Path) -> None:
    env = _contract(tmp_path, {"a.png": b"aa", "b.png": b"poison", "c.png": b"cc"})
    held: list[Loaded] = []
    assert main(_stage(held).stage(), env) == EXIT_OK
    assert len(held) == 1 and held[0].made == ["a", "b", "c"] and held[0].closed
    report = _report(tmp_path)
    assert sorted(report.succeeded) == ["a", "c"] and [(f.id, f.reason) for f in report.failed] == [("b", "Poisoned")]
    assert report.produced_by == {"suffixer:!": 2}
    marker = json.loads((tmp_path / "run/toy/a/_SUCCESS.json").read_text())
    assert marker["extra"]["params"]["producedBy"] == "suffixer:!"
    assert (tmp_path / "run/toy/a/out.txt").read_bytes() == b"aa!"
    (tmp_path / "in/b.png").write_bytes(b"bb")
    again: list[Loaded] = []
    assert main(_stage(again).stage(), env) == EXIT_OK
    assert again[0].made == ["b"]  # the committed ones are skipped; the dropped one is made again


def test_a_batch_stage_gets_its_batches_and_its_per_sample_errors_are_kept(tmp_path: Path) -> None:
    env = _contract(tmp_path, {f"{i}.png": b"x" for i in range(5)}, batchSize=2)
    batches: list[list[str]] = []

    def make_batch(loaded: Loaded, samples: list[Sample]) -> list[Exception | None]:
        batches.append([s.id for s in samples])
        for s in samples:
            s.write(f"{s.id}/out.txt", b"y")
        return [SampleError("Odd") if int(s.id) % 2 else None for s in samples]

    stage = SampleStage("toy", lambda settings, ctx: Loaded("?"), make_batch=make_batch, batch_size=4)
    assert main(stage.stage(), env) == EXIT_OK
    assert batches == [["0", "1"], ["2", "3"], ["4"]]  # batchSize in the config wins over batch_size
    report = _report(tmp_path)
    assert sorted(report.succeeded) == ["0", "2", "4"] and sorted(f.id for f in report.failed) == ["1", "3"]
    assert report.produced_by == {}  # no made_by: nothing claimed


def test_a_load_that_refuses_the_config_is_bad_input(tmp_path: Path) -> None:
    env = _contract(tmp_path, {"a.png": b"aa"}, config={"suffix": "bad"})
    assert main(_stage([]).stage(), env) == EXIT_BAD_INPUT
    assert "config.suffix" in _report(tmp_path).message


@pytest.mark.parametrize("kw", [{}, {"make": lambda m, s: None, "make_batch": lambda m, s: []},
                                {"make": lambda m, s: None, "make_set": lambda m, s, u: None}])
def test_exactly_one_of_make_make_batch_and_make_set(kw: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match="exactly one of make, make_batch and make_set"):
        SampleStage("toy", lambda settings, ctx: None, **kw)


def test_the_registry_builds_a_declared_sample_stage_with_its_declared_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import genfab.api.pipeline
    from genfab.stages.runtime import registry
    from genfab.stages.runtime.loop import declared_settings
    from tests.toy_pipeline.pipeline import PIPELINE, DigestSettings

    for module in (registry, genfab.api.pipeline):  # the toy pipeline alone, not registered for other tests
        monkeypatch.setattr(module, "pipelines", lambda: {"checksums": PIPELINE})
    stage, decl = registry.load("checksums", "digest")
    assert stage.name == "digest" and stage.declared_as == "tests.toy_pipeline.stage:DIGEST"
    assert decl.settings is DigestSettings
    ctx = type("Ctx", (), {"cfg": type("Cfg", (), {"pipeline": "checksums"})(), "stage": "digest"})()
    assert declared_settings(ctx, stage) is DigestSettings  # type: ignore[arg-type]
    from tests.toy_pipeline.stage import DIGEST

    handed = DIGEST.stage()  # `main(DIGEST.stage())`, not through the registry: the declaration's object itself
    assert not handed.declared_as and declared_settings(ctx, handed) is DigestSettings  # type: ignore[arg-type]
    other = SampleStage("digest", lambda settings, ctx: None, lambda loaded, sample: None).stage()
    assert declared_settings(ctx, other) is None  # type: ignore[arg-type]  # a stage of its own: no model


def test_a_file_after_each_shard_and_an_output_folder_kept_to_the_current_config(tmp_path: Path) -> None:
    """`after_shard` is called with the shard's final report; `prunes_outputs` is the stage's."""
    env = _contract(tmp_path, {"a.png": b"aa"})
    seen: list[tuple[str, list[str]]] = []
    stage = _stage([], after_shard=lambda ctx, report: seen.append((report.state, sorted(report.succeeded))),
                   prunes_outputs=True)
    assert stage.stage().prunes_outputs and not _stage([]).stage().prunes_outputs
    assert main(stage.stage(), env) == EXIT_OK
    assert seen == [("succeeded", ["a"])]
