"""Model stages on the CPU (`open_models` in a `SampleStage`'s `load`): placement, load once per shard with
timing, optional models and their fallback, a missing required model as bad input naming the path, the
batch size override."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genfab.contract import EXIT_BAD_INPUT, EXIT_OK, report_key
from genfab.inventory import ShardReport
from genfab.stages.models.base import ModelSet, model_params, open_models, required_models
from genfab.stages.models.placement import Placement
from genfab.stages.runtime import BadInput, Sample, SampleStage, StageContext, main
from genfab.storage import open_storage
from tests.helpers import stage_contract

torch = pytest.importorskip("torch")


def save_linear(root: Path, model_id: str) -> Path:
    """A `from_pretrained`-style folder (what a model location holds per model id)."""
    path = root / model_id
    path.mkdir(parents=True)
    torch.save(torch.nn.Linear(4, 2).state_dict(), path / "weights.pt")
    (path / "config.json").write_text(json.dumps({"in": 4, "out": 2}))
    return path


def load_linear(path: Path, placement: Placement) -> Any:
    model = torch.nn.Linear(4, 2)
    model.load_state_dict(torch.load(path / "weights.pt"))
    return placement.place(model.to(placement.dtype))


class Doubler:
    """A model stage (a `SampleStage` whose `load` opens its models) and what the test sees of it."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.loads = 0
        self.models: ModelSet | None = None

    def load(self, settings: dict[str, Any], ctx: StageContext) -> tuple[ModelSet, Any]:
        self.loads += 1
        self.models = models = open_models(ctx)
        with required_models():
            net = models.load("net", "lab/net", load_linear)
            models.load_optional("extra", "lab/absent", load_linear)
        return models, net

    def make_batch(self, held: tuple[ModelSet, Any], samples: list[Sample]) -> list[Exception | None]:
        models, net = held
        self.batches.append(len(samples))
        with torch.inference_mode():
            out = net(torch.ones(len(samples), 4, dtype=models.placement.dtype))
        for sample, row in zip(samples, out.tolist(), strict=True):
            sample.params.update(model_params(models))
            sample.write(f"{sample.id}.json", json.dumps(row).encode())
        return [None] * len(samples)

    def stage(self) -> Any:
        return SampleStage("doubler", self.load, make_batch=self.make_batch, batch_size=3).stage()


def contract(tmp_path: Path, models: Path | None, **fields: Any) -> dict[str, str]:
    (tmp_path / "in").mkdir()
    for i in range(7):
        (tmp_path / "in" / f"s{i}.png").write_bytes(b"x")
    env = stage_contract(tmp_path, "doubler", inputUris=[f"file://{tmp_path}/in"], **fields)
    return {**env, **({"GENFAB_MODELS": str(models)} if models else {})}


def shard_report(tmp_path: Path) -> ShardReport:
    return ShardReport.from_json(open_storage(f"file://{tmp_path}/run").read_bytes(report_key("doubler", "c" * 64, 0)))


def test_models_load_once_per_shard_and_samples_come_in_batches(tmp_path: Path) -> None:
    save_linear(tmp_path / "models", "lab/net")
    stage = Doubler()
    assert main(stage.stage(), contract(tmp_path, tmp_path / "models", batchSize=2)) == EXIT_OK
    assert stage.models is not None
    assert stage.loads == 1 and stage.batches == [2, 2, 2, 1]  # the contract's batch size wins over 3
    assert stage.models.placement.device.type == "cpu" and stage.models.placement.dtype == torch.float32
    (net,) = stage.models.loaded
    assert (net.role, net.model_id, net.seconds >= 0) == ("net", "lab/net", True)
    assert "lab/absent" in stage.models.unavailable["extra"]  # the optional model names where it looked
    report = shard_report(tmp_path)
    assert len(report.succeeded) == 7 and report.model_load_seconds is not None
    marker = json.loads((tmp_path / "run" / "doubler" / "s0" / "_SUCCESS.json").read_text())
    assert marker["extra"]["params"] == {"models": {"net": "lab/net"}, "unavailableModels": ["extra"]}


def test_a_missing_required_model_is_bad_input_naming_the_path(tmp_path: Path) -> None:
    env = contract(tmp_path, tmp_path / "models")
    (tmp_path / "models").mkdir()
    assert main(Doubler().stage(), env) == EXIT_BAD_INPUT
    report = shard_report(tmp_path)
    assert "lab/net" in report.message and str(tmp_path / "models") in report.message


def test_placement_on_a_cpu_machine() -> None:
    if torch.cuda.is_available():
        pytest.skip("checks the CPU choice")
    cpu = Placement.choose("auto", "model")
    assert (cpu.device.type, cpu.dtype, cpu.offload) == ("cpu", torch.float32, "none")  # no offload without a GPU
    assert Placement.choose("bfloat16").dtype == torch.bfloat16
    with pytest.raises(BadInput, match="needs a CUDA GPU"):
        Placement.choose(require_gpu=True)


def test_a_file_uri_model_location_is_used_in_place(tmp_path: Path) -> None:
    from genfab.stages.models.location import resolve_model

    models = tmp_path / "models"
    (models / "org/model").mkdir(parents=True)
    (models / "org/model/config.json").write_text("{}")
    cache = tmp_path / "cache"
    assert resolve_model("org/model", cache, {"GENFAB_MODELS": f"file://{models}"}) == models / "org/model"
    assert resolve_model("org/model", cache, {"GENFAB_MODELS": str(models)}) == models / "org/model"
    assert not cache.exists()  # a local folder (laptop, mounted volume) is never copied
