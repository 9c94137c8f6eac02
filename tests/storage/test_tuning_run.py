"""TuningRun `difix` on the CPU with the tiny random DiFix (a stand-in for nvidia/difix_ref) and the
bundled DiFix export: the distributed launch as two gloo "nodes" against one rank with the same
global batch, Difix3D's checkpoint format, resume (step count, optimizer state, data position), and
data staging from S3 with the path rewrite and no second download."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from genfab.stages.models.difix_checkpoints import REQUIRED, read_checkpoint  # noqa: E402
from genfab.stages.tuning.staging import stage_data  # noqa: E402
from genfab.stages.tuning.trainer import Hyper, Options, TrainerIO, train  # noqa: E402
from genfab.storage import open_storage  # noqa: E402
from genfab.storage.s3 import S3Settings  # noqa: E402
from tests import made_once  # noqa: E402
from tests.helpers import ROOT, genfab_run  # noqa: E402
from tests.storage.difix_sources import job as difix_job  # noqa: E402
from tests.storage.s3 import BUCKET  # noqa: E402

pytestmark = pytest.mark.storage
TINY = {"resolution": 64, "width": 64, "maxSteps": 6, "checkpointEvery": 3, "evalEvery": 6, "evalSamples": 2,
        "gramWarmupSteps": 1, "mixedPrecision": "no", "dataloaderWorkers": 0}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bundled export (genfab run of the difix DatasetJob) and the tiny models."""
    root = tmp_path_factory.mktemp("tuning")
    models = made_once.tiny_models("save_tuning_models")  # machine-wide, read-only
    export = root / "export"
    done = genfab_run(root, difix_job(f"file://{export}", f"file://{ROOT / 'examples/data/difix'}"), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"root": root, "models": models, "export": export}


def tuning_run(world: dict[str, Path], name: str, **spec: Any) -> dict[str, Any]:
    hyper = {**TINY, **spec.pop("hyperparameters", {})}
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "TuningRun", "metadata": {"name": name},
            "spec": {"trainer": "difix", "dataset": {"dataJsonUri": f"file://{world['export']}/difix/data.json"},
                     "runName": name, "output": f"file://{world['export']}", "retries": 0,
                     "models": {"uri": f"file://{world['models']}"}, "hyperparameters": hyper, **spec}}


def steps(world: dict[str, Path], run: str) -> list[dict[str, float]]:
    lines = (world["export"] / "tuning_runs" / run / "logs" / "steps.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def two_nodes(world: dict[str, Path]) -> Path:
    """A one-rank run with batch 2 and a two-node run with batch 1 per node, built here so that every
    test reading them runs alone too; the two-node run's folder."""
    one = genfab_run(world["root"], tuning_run(world, "one-rank", hyperparameters={"batchSize": 2}), timeout=300)
    assert one.returncode == 0, one.stdout + one.stderr
    # A 12 s progress deadline on a longer run: training steps (node 0) and live workers (node 1)
    # are progress, though no sample finishes until the end.
    two = genfab_run(world["root"], tuning_run(world, "two-nodes", nodes=2, progressDeadlineSeconds=12), timeout=300,
                     env={"GENFAB_SYNC_SECONDS": "1"})
    assert two.returncode == 0, two.stdout + two.stderr
    return world["export"] / "tuning_runs" / "two-nodes"


def test_two_nodes_train_like_one_rank_with_the_same_global_batch(world: dict[str, Path], two_nodes: Path
                                                                   ) -> None:
    """`nodes: 2` runs the launch wrapper twice (node ranks 0 and 1, one gloo worker each): the loss
    curve equals one rank's with batch 2, and both runs write Difix3D's layout. Within 1e-3: the
    gradients agree to float rounding (an all-reduce sums in another order than one batch), and
    Adam's first steps turn rounding-sized gradients into full-size updates."""
    a, b = steps(world, "one-rank"), steps(world, "two-nodes")
    assert [s["step"] for s in a] == [s["step"] for s in b] == [1, 2, 3, 4, 5, 6]
    for x, y in zip(a, b, strict=True):
        assert y["loss_total"] == pytest.approx(x["loss_total"], rel=1e-3), x["step"]
        for k in ("loss_l2", "loss_lpips", "loss_gram"):
            assert y.get(k, 0.0) == pytest.approx(x.get(k, 0.0), rel=5e-3, abs=1e-7), (x["step"], k)
    assert a[0]["loss_total"] != pytest.approx(a[-1]["loss_total"], rel=1e-6)  # it trains
    run = two_nodes
    config = json.loads((run / "train_config.json").read_text())
    assert config["world_size"] == 2 and config["global_batch"] == 2
    # where the data and the model came from, not the run's temporary copies of them
    assert config["dataset_path"].startswith("file://") and config["dataset_path"].endswith("/difix/data.json")
    assert config["base_model"] == "stabilityai/sd-turbo"  # the lab's trainer's starting model
    # which trainer made its checkpoints: genfab's own, in train_config.json, the summary and the status
    assert config["trainer"] == "genfab" and config["history"] == [{"trainer": "genfab", "startStep": 0,
                                                                    "resumedFrom": None}]
    summary = json.loads((run / "_genfab" / "summary.json").read_text())
    assert summary["stages"][0]["seconds"] > 12  # longer than the deadline, and not stopped
    assert summary["stages"][0]["producedBy"] == {"genfab": 2}  # one per node
    assert json.loads((run / "_genfab" / "status.json").read_text())["status"]["training"]["trainer"] == "genfab"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["model_3.pkl", "model_6.pkl"]
    metrics = json.loads((run / "eval" / "metrics_0000006.json").read_text())
    assert {"psnr", "ssim", "lpips", "input_psnr", "samples"} <= set(metrics) and metrics["samples"] == 2
    assert (run / "eval" / "grid_0000006.png").is_file()
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "logs").iterdir())
    status = json.loads((run / "_genfab" / "status.json").read_text())["status"]
    assert status["progress"] == "6/6" and status["training"]["latestCheckpoint"].endswith("checkpoints/model_6.pkl")
    training = json.loads((run / "_genfab" / "training.json").read_text())
    assert training["step"] == 6 and training["maxSteps"] == 6 and training["checkpoints"] == [
        "model_3.pkl", "model_6.pkl"]
    # the best checkpoint by held-out PSNR (one evaluation, at step 6), in the status and the summary
    assert training["heldOutPsnr"] == {"6": metrics["psnr"]}
    best = status["training"]
    assert best["bestCheckpoint"].endswith("checkpoints/model_6.pkl") and best["bestStep"] == 6
    assert best["bestPsnr"] == round(metrics["psnr"], 4) and summary["training"]["bestStep"] == 6


def test_the_runs_report_shows_the_curves_and_each_checkpoints_evaluation(two_nodes: Path) -> None:
    report = two_nodes / "_genfab/report"
    page = (report / "index.html").read_text()
    assert "TuningRun/two-nodes (tuning-difix)" in page and "Evaluation per checkpoint" in page
    assert {p.name for p in (report / "plots").iterdir()} == {"loss.png", "learning-rate.png"}  # one eval: no curve
    assert page.count('data-sample="step ') == 1 and "model_6.pkl" in page  # the checkpoint's eval grid


def test_checkpoints_are_difix3d_checkpoints(two_nodes: Path) -> None:
    sd = read_checkpoint(two_nodes / "checkpoints" / "model_6.pkl")
    assert set(REQUIRED) <= set(sd)
    assert sd["rank_vae"] == 4 and all(t.startswith("decoder.") for t in sd["vae_lora_target_modules"])
    assert any(k.startswith("conv_in.") for k in sd["state_dict_unet"])  # the whole UNet
    assert sd["state_dict_vae"] and all("lora" in k or "skip" in k for k in sd["state_dict_vae"])
    assert any("lora_A.vae_skip" in k for k in sd["state_dict_vae"])
    assert any(k.startswith("decoder.skip_conv_1.") for k in sd["state_dict_vae"])
    assert {"state", "param_groups"} <= set(sd["optimizer"]) and sd["global_step"] == 6


def _flat(sd: dict[str, Any]) -> torch.Tensor:
    return torch.cat([v.float().flatten() for _, v in sorted(sd.items())])


def test_a_resumed_run_continues_exactly(world: dict[str, Path], tmp_path: Path) -> None:
    """2 steps + resume to 4 equals 4 straight steps: weights, optimizer moments and step counts (so
    the optimizer state and the data position were restored), and the step numbers continue."""
    base, perceptual = world["models"] / "nvidia/difix_ref", world["models"] / "genfab/vgg16-lpips"
    data = world["export"] / "difix" / "data.json"
    hyper = Hyper(resolution=64, width=64, max_steps=4, checkpoint_every=2, eval_every=100, gram_warmup_steps=1,
                  mixed_precision="no", dataloader_workers=0, learning_rate=1e-3, batch_size=2, eval_samples=1)
    straight = train(hyper, base, perceptual, data, TrainerIO(tmp_path / "a"), Options(fast=False))
    first = train(hyper.model_copy(update={"max_steps": 2}), base, perceptual, data, TrainerIO(tmp_path / "b"),
                  Options(fast=False))
    resumed = train(hyper, base, perceptual, data, TrainerIO(tmp_path / "b"), Options(fast=False))
    assert (straight.start_step, first.step, resumed.start_step, resumed.step) == (0, 2, 2, 4)
    assert [r["total"] for r in resumed.losses] == pytest.approx([r["total"] for r in straight.losses[2:]], rel=1e-5)
    a = read_checkpoint(tmp_path / "a" / "checkpoints" / "model_4.pkl")
    b = read_checkpoint(tmp_path / "b" / "checkpoints" / "model_4.pkl")
    assert torch.allclose(_flat(a["state_dict_unet"]), _flat(b["state_dict_unet"]), atol=1e-6)
    assert torch.allclose(_flat(a["state_dict_vae"]), _flat(b["state_dict_vae"]), atol=1e-6)
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and all(float(sb[i]["step"]) == 4.0 for i in sb)
    assert all(torch.allclose(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"], rtol=1e-4, atol=1e-12) for i in sa)
    lines = [json.loads(x)["step"] for x in (tmp_path / "b" / "logs" / "steps.jsonl").read_text().splitlines()]
    assert lines == [1, 2, 3, 4]
    assert json.loads((tmp_path / "b" / "train_config.json").read_text())["resumed_from"] == "model_2.pkl"


def test_staging_from_s3_rewrites_paths_and_fetches_once(world: dict[str, Path], s3_endpoint: str,
                                                         tmp_path: Path) -> None:
    """A prefix-form export on S3 (`/data/samples/...`): every image lands under the local root, the
    local data.json points there, and a second staging (a restarted Pod) downloads nothing."""
    settings = S3Settings(endpoint=s3_endpoint, addressing_style="path", access_key_id="test",
                          secret_access_key="test-secret")
    remote = open_storage(f"s3://{BUCKET}/exp-prefix", settings)
    local_export = world["export"]
    data = json.loads((local_export / "difix" / "data.json").read_text())
    root = str(local_export)
    prefixed = {split: {sid: {k: (v.replace(root, "/data") if k != "prompt" else v) for k, v in e.items()}
                        for sid, e in entries.items()} for split, entries in data.items()}
    for split in prefixed.values():
        for e in split.values():
            for k in ("image", "target_image", "ref_image"):
                rel = e[k].removeprefix("/data/")
                remote.write_bytes(rel, (local_export / rel).read_bytes())
    remote.write_bytes("difix/data.json", json.dumps(prefixed).encode())
    remote.write_bytes("meta/generation_config.yaml", b"paths: prefix\npathPrefix: /data\n")
    staged = stage_data(remote, "difix/data.json", tmp_path / "data")
    assert staged.fetched == staged.files > 0 and staged.train == len(data["train"])
    local = json.loads(staged.data_json.read_text())
    some = next(iter(local["train"].values()))
    assert some["image"].startswith(str(tmp_path / "data" / "samples")) and Path(some["ref_image"]).is_file()
    again = stage_data(remote, "difix/data.json", tmp_path / "data")
    assert again.fetched == 0 and again.bytes_fetched == 0


def test_the_labs_own_trainer_runs_under_the_same_launch_staging_and_sync(world: dict[str, Path]) -> None:
    """A custom stage `train` (here a stand-in for Difix3D's train_difix.py) gets the staged data,
    Difix3D's flags from the spec, the group's launch and `--resume` with the newest checkpoint; what
    it writes is uploaded to the run folder."""
    fake = ROOT / "tests" / "fixtures" / "fake_train_difix.py"
    lab = [{"name": "train", "image": "registry.example.com/lab/difix3d-train:2025.06",
            "command": ["python", str(fake)]}]
    first = genfab_run(world["root"], tuning_run(world, "lab", customStages=lab,
                                                  hyperparameters={"maxSteps": 4, "checkpointEvery": 2}), timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    run = world["export"] / "tuning_runs" / "lab"
    seen = json.loads((run / "args.json").read_text())
    args = seen["args"]
    assert args["tracker_run_name"] == "lab" and args["max_train_steps"] == 4 and args["checkpointing_steps"] == 2
    assert args["train_batch_size"] == 1 and args["resolution"] == 64 and args["lambda_gram"] == 1.0
    assert args["resume"] is None and seen["start"] == 0 and seen["rank"] == "0"  # under torchrun
    assert args["report_to"] == "wandb"  # tensorboard would need a logging folder train_difix.py never passes
    assert seen["env"]["GENFAB_DATA_JSON"] == args["dataset_path"] and seen["env"]["GENFAB_NNODES"] == "1"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["model_2.pkl", "model_4.pkl"]
    assert (run / "eval" / "val_4.json").is_file()
    status = json.loads((run / "_genfab" / "status.json").read_text())["status"]
    assert status["phase"] == "Succeeded" and status["training"]["step"] == 4
    again = genfab_run(world["root"], tuning_run(world, "lab", customStages=lab,
                                                  hyperparameters={"maxSteps": 6, "checkpointEvery": 2}), timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    seen = json.loads((run / "args.json").read_text())
    assert seen["args"]["resume"].endswith("checkpoints/model_4.pkl") and seen["start"] == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["model_2.pkl", "model_4.pkl", "model_6.pkl"]
    # A script whose image recorded no source is named by its file, never given a commit.
    config = json.loads((run / "train_config.json").read_text())
    trainer = "custom:fake_train_difix.py"
    assert config["trainer"] == trainer and config["trainerSource"] is None and config["resumed_from"] == "model_4.pkl"
    # the tiny models hold SD-Turbo (the TuningRun's default base, the lab's) and a features-only VGG16:
    # the record says the model location served the one and torch's hub would serve the other
    assert config["models"] == {"stabilityai/sd-turbo": "the model location: stabilityai/sd-turbo",
                                "vgg16": "torch's hub (torchvision's ImageNet VGG16)"}
    assert [(e["trainer"], e["startStep"]) for e in config["history"]] == [(trainer, 0), (trainer, 4)]
    status = json.loads((run / "_genfab" / "status.json").read_text())["status"]
    assert status["training"]["trainer"] == trainer


def test_the_lab_trainers_source_record_names_it(world: dict[str, Path], tmp_path: Path) -> None:
    """The checkout its image made holds `.genfab-source.json` (images/difix3d): the trainer is named by
    its repository and commit in train_config.json, the summary and the status."""
    from genfab.stages.tuning.provenance import write_source

    checkout = tmp_path / "difix3d"
    (checkout / "src").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "fixtures" / "fake_train_difix.py", checkout / "src" / "train_difix.py")
    write_source(checkout, "difix3d", "https://github.com/nv-tlabs/Difix3D", "c76edc595586e16732c91ddee82f3a6d83a8a9cc",
                 ["upstream-fixes.patch"])
    lab = [{"name": "train", "image": "registry.example.com/lab/difix3d-train:2025.06",
            "command": ["python", str(checkout / "src" / "train_difix.py")]}]
    done = genfab_run(world["root"], tuning_run(world, "lab-source", customStages=lab,
                                                 hyperparameters={"maxSteps": 2, "checkpointEvery": 2}), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    run = world["export"] / "tuning_runs" / "lab-source"
    name = "difix3d:train_difix.py@c76edc595586"
    config = json.loads((run / "train_config.json").read_text())
    assert config["trainer"] == name and config["trainerSource"]["patches"] == ["upstream-fixes.patch"]
    summary = json.loads((run / "_genfab" / "summary.json").read_text())
    assert summary["stages"][0]["producedBy"] == {name: 1}
    assert json.loads((run / "_genfab" / "status.json").read_text())["status"]["training"]["trainer"] == name


def test_an_oversized_training_record_is_refused(world: dict[str, Path]) -> None:
    """`train_config.json` is in the tenant's output: read back up to 1 MiB, a larger one refused in one
    line (exit 1), never read whole."""
    run = world["export"] / "tuning_runs" / "oversized"
    run.mkdir(parents=True)
    (run / "train_config.json").write_text('{"history": [' + ",".join(["{}"] * 400_000) + "]}")
    done = genfab_run(world["root"], tuning_run(world, "oversized"), timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "train_config.json is over 1024 KiB: not a training record genfab wrote" in done.stdout + done.stderr
    assert not (run / "checkpoints").exists()


def test_a_killed_run_leaves_no_process_behind(world: dict[str, Path]) -> None:
    """SIGKILL of `genfab run` during a two-node run: its shard processes, their torchrun launchers and
    the training workers all end with it (none keeps writing to the output or waits on a dead peer)."""
    import os
    import signal
    import time

    import psutil

    run = genfab_run(world["root"], tuning_run(world, "killed", nodes=2, hyperparameters={"maxSteps": 10000}),
                     wait=False)
    try:
        parent = psutil.Process(run.pid)
        deadline = time.monotonic() + 120
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline:  # both nodes launched and their workers started
            workers = [p for p in parent.children(recursive=True) if "genfab.stages.tuning.worker" in " ".join(
                p.cmdline())]
            if len(workers) == 2:
                break
            time.sleep(0.5)
        assert len(workers) == 2, "the two nodes' workers did not start"
        family = parent.children(recursive=True)
    finally:
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    _, alive = psutil.wait_procs(family, timeout=60)
    assert not alive, [" ".join(p.cmdline()[:4]) for p in alive]
