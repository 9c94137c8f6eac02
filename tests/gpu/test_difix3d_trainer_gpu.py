"""GPU tier: the lab's DiFix trainer on its own code. Difix3D's `src/train_difix.py` (nv-tlabs/Difix3D at
the commit images/difix3d pins, with that image's two upstream fixes: `scripts/gpu_tier.py
--prepare-research --package difix3d`) runs as a TuningRun's custom `train` stage through genfab's
wrapper, with SD-Turbo's architecture at random weights (what it loads by hub name, from the model
location laid out as the hub's cache). Its checkpoint resumes in genfab's trainer and genfab's in it,
optimizer state included; each start's trainer is recorded in train_config.json, the summary and the
status."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("peft")
pytest.importorskip("lpips")
pytest.importorskip("wandb")

from scripts.tiny_models import save_tiny_difix, save_tiny_perceptual  # noqa: E402

from tests.helpers import ROOT, genfab_run  # noqa: E402

DIFIX3D = ROOT / ".research" / "difix3d"
if not (DIFIX3D / "src" / "train_difix.py").is_file():
    pytest.skip("needs Difix3D's code: scripts/gpu_tier.py --prepare-research --package difix3d",
                allow_module_level=True)

COMMIT = json.loads((DIFIX3D / ".genfab-source.json").read_text())["commit"]
LAB = f"difix3d:train_difix.py@{COMMIT[:12]}"
HYPER = {"batchSize": 1, "checkpointEvery": 2, "evalEvery": 1000, "evalSamples": 1, "gramWarmupSteps": 0,
         "mixedPrecision": "bf16", "dataloaderWorkers": 0, "compile": False}
"""One recipe for every start (a runName is one setup). 576x1024 (the default) is the size Difix3D's
PairedDataset trains at whatever it is told; the Gram loss from the first step, on its 400x400 crop.
genfab's trainer runs eager (compiling takes longer than the whole test's device call allows): its fast
path's channels-last weights and fused AdamW, where a resumed optimizer state must match, still run."""


def pairs(folder: Path) -> Path:
    """A Difix3D data.json of one training and one test sample (degraded image, target, reference)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:576, 0:1024]
    data: dict[str, dict[str, Any]] = {"train": {}, "test": {}}
    for split in data:
        names = {}
        for kind in ("image", "target_image", "ref_image"):
            base = np.stack([(x * 255 // 1023), (y * 255 // 575), np.full_like(x, 128)], -1).astype(np.float32)
            noisy = base + rng.normal(0, 40 if kind == "image" else 5, base.shape)
            path = folder / f"{split}_{kind}.png"
            Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(path)
            names[kind] = str(path)
        data[split][f"{split}_0"] = {**names, "prompt": "remove degradation"}
    path = folder / "data.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def upstream_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Difix3D's requirements.txt pins (diffusers 0.25.1, transformers 4.38.0, peft 0.9.0, huggingface-hub
    0.25.1), as its image holds them, first on the lab trainer's path only: genfab's own trainer runs
    on genfab's (diffusers 0.42 no longer steps a one-step DDPM schedule at a timestep outside it, which
    Difix3D's forward does at 199)."""
    site = tmp_path_factory.mktemp("difix3d-site")
    wheels = sorted(str(p) for p in (DIFIX3D / "wheels").glob("*.whl"))
    assert wheels, "scripts/gpu_tier.py --prepare-research --package difix3d writes its pins' wheels"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(site),
                    *wheels], check=True)
    return site


def tuning_run(name: str, data: Path, output: Path, models: Path, max_steps: int, lab: Path | None
               ) -> dict[str, Any]:
    spec: dict[str, Any] = {"trainer": "difix", "dataset": {"dataJsonUri": f"file://{data}"}, "runName": "interop",
                            "output": f"file://{output}", "retries": 0, "models": {"uri": f"file://{models}"},
                            "baseModel": "stabilityai/sd-turbo", "hyperparameters": {**HYPER, "maxSteps": max_steps}}
    if lab is not None:  # one optimizer step per epoch (one training pair): an epoch is a step
        path = os.pathsep.join([str(lab), *(str(ROOT / p) for p in ("operator", "stages", "")),
                                os.environ.get("PYTHONPATH", "")])
        spec["customStages"] = [{"name": "train", "image": "genfab-difix3d:test", "command": [
            "python", str(DIFIX3D / "src" / "train_difix.py"), "--num_training_epochs", "1"],
            "env": [{"name": "PYTHONPATH", "value": path}]}]
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "TuningRun", "metadata": {"name": name}, "spec": spec}


def run(tmp_path: Path, doc: dict[str, Any]) -> float:
    """`genfab run` of one start; its seconds."""
    started = time.monotonic()
    done = genfab_run(tmp_path, doc, timeout=540, env={"GENFAB_SYNC_SECONDS": "1"})
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    return time.monotonic() - started


def checkpoint(folder: Path, step: int) -> dict[str, Any]:
    return torch.load(folder / "checkpoints" / f"model_{step}.pkl", map_location="cpu", weights_only=False)


def unet_steps(sd: dict[str, Any]) -> float:
    """AdamW's step count of the first UNet parameter (Difix3D's optimizer lists the skip convolutions'
    LoRA tensors twice, so theirs count two a step)."""
    return float(sd["optimizer"]["state"][0]["step"])


def test_difix3d_and_genfab_resume_each_others_checkpoints(tmp_path: Path, upstream_site: Path) -> None:
    models = tmp_path / "models"
    save_tiny_difix(models, model_id="stabilityai/sd-turbo", full_size=True)
    save_tiny_perceptual(models, full_size=True)
    (tmp_path / "data").mkdir()
    data = pairs(tmp_path / "data")
    output = tmp_path / "out"
    folder = output / "tuning_runs" / "interop"
    timings = {}

    # 1. Difix3D's trainer from scratch: one step; it checkpoints where global_step % checkpointing_steps == 1.
    timings["difix3d"] = run(tmp_path, tuning_run("interop", data, output, models, 1, upstream_site))
    config = json.loads((folder / "train_config.json").read_text())
    assert config["trainer"] == LAB and config["trainerSource"]["commit"] == COMMIT
    assert config["history"] == [{"trainer": LAB, "startStep": 0, "resumedFrom": None}]
    assert config["models"] == {"stabilityai/sd-turbo": "the model location: stabilityai/sd-turbo",
                                "vgg16": "the model location: genfab/vgg16-lpips"}  # nothing downloaded
    first = checkpoint(folder, 1)
    assert unet_steps(first) == 1.0 and first["rank_vae"] == 4
    assert any(p.name.startswith("offline-run") for p in (folder / "wandb").iterdir())  # its tracker, offline
    status = json.loads((folder / "_genfab" / "status.json").read_text())["status"]
    assert status["training"]["trainer"] == LAB and status["training"]["checkpoints"] == ["model_1.pkl"]
    summary = json.loads((folder / "_genfab" / "summary.json").read_text())
    assert [s["producedBy"] for s in summary["stages"] if s["name"] == "train"] == [{LAB: 1}]

    # 2. genfab's trainer continues Difix3D's checkpoint (weights and AdamW state).
    timings["genfab"] = run(tmp_path, tuning_run("interop", data, output, models, 2, None))
    config = json.loads((folder / "train_config.json").read_text())
    assert config["trainer"] == "genfab" and config["resumed_from"] == "model_1.pkl" and config["start_step"] == 1
    assert [(e["trainer"], e["startStep"]) for e in config["history"]] == [(LAB, 0), ("genfab", 1)]
    steps = [json.loads(x) for x in (folder / "logs" / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [2] and all(torch.isfinite(torch.tensor(s["loss_total"])) for s in steps)
    second = checkpoint(folder, 2)
    assert unet_steps(second) == 2.0
    moved = [k for k, v in first["state_dict_unet"].items() if not torch.equal(v.float(), second["state_dict_unet"][k])]
    assert moved, "genfab's step changed no UNet weight"
    status = json.loads((folder / "_genfab" / "status.json").read_text())["status"]
    assert status["training"]["trainer"] == "genfab"
    del first
    (folder / "checkpoints" / "model_1.pkl").unlink()  # 10 GB each: the disk holds three at most

    # 3. Difix3D's trainer continues genfab's checkpoint: its --resume, the newest checkpoint.
    timings["difix3d-resumed"] = run(tmp_path, tuning_run("interop", data, output, models, 3, upstream_site))
    config = json.loads((folder / "train_config.json").read_text())
    assert config["trainer"] == LAB and config["resumed_from"] == "model_2.pkl"
    assert [(e["trainer"], e["startStep"]) for e in config["history"]] == [(LAB, 0), ("genfab", 1), (LAB, 2)]
    third = checkpoint(folder, 3)
    assert unet_steps(third) == 3.0, "Difix3D's trainer did not continue genfab's optimizer state"
    # Difix3D trains in bf16: genfab's fp32 weights were cast, then stepped
    moved = [k for k, v in second["state_dict_unet"].items()
             if not torch.equal(v.to(third["state_dict_unet"][k].dtype), third["state_dict_unet"][k])]
    assert moved, "Difix3D's step changed no UNet weight"
    sizes = {p.name: round(p.stat().st_size / 2**30, 2) for p in (folder / "checkpoints").iterdir()}
    print("Difix3D's train_difix.py and genfab's trainer, SD-Turbo size (random weights):",
          json.dumps({"trainer": LAB, "seconds": {k: round(v, 1) for k, v in timings.items()},
                      "checkpointGiB": sizes, "gpu": torch.cuda.get_device_name(),
                      "wandb": __import__("wandb").__version__, "upstreamPins": sorted(
                          p.name for p in upstream_site.glob("*.dist-info")),
                      "genfabSide": {"diffusers": __import__("diffusers").__version__,
                                     "transformers": __import__("transformers").__version__},
                      "torch": torch.__version__}))
    shutil.rmtree(output, ignore_errors=True)
    assert not os.path.exists(output)
