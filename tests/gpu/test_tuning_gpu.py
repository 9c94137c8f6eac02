"""GPU tier: a TuningRun on 2 GPUs of one node (torchrun, NCCL) with the tiny random DiFix through
`genfab run`, in bf16 with the fast path (channels-last, torch.compile, fused AdamW), against the
same run on 1 GPU with the same global batch. (The SD-Turbo-size 2-GPU run is
`benchmarks/tuning.py`'s scaling run.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("peft")

from scripts.tiny_models import save_tuning_models  # noqa: E402

from tests.helpers import ROOT, genfab_run  # noqa: E402


def difix_job(output: str, source: str) -> dict[str, object]:
    """The bundled export (the storage tier's job; not imported from there: it needs moto)."""
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "difix"},
            "spec": {"type": "difix", "output": output,
                     "difix": {"sources": [{"name": "proc", "dataset": "generic", "uri": source, "groupBy": "pattern",
                                            "groupPattern": "_(pair\\d+)_", "minMaskFraction": 0.01}],
                               "split": {"trainRatio": 0.6, "seed": 42}, "paths": "absolute"}}}

needs_two = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")


@needs_two
def test_two_gpus_train_like_one_with_the_same_global_batch(tmp_path: Path) -> None:
    models = save_tuning_models(tmp_path / "models")
    export = tmp_path / "export"
    done = genfab_run(tmp_path, difix_job(f"file://{export}", f"file://{ROOT / 'examples/data/difix'}"), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    hyper = {"resolution": 64, "width": 64, "maxSteps": 6, "checkpointEvery": 3, "evalEvery": 6, "evalSamples": 2,
             "gramWarmupSteps": 1, "mixedPrecision": "bf16", "dataloaderWorkers": 2}
    losses = {}
    for name, gpus, batch in (("one-gpu", 1, 2), ("two-gpus", 2, 1)):
        doc = {"apiVersion": "genfab.dev/v1alpha1", "kind": "TuningRun", "metadata": {"name": name},
               "spec": {"trainer": "difix", "dataset": {"dataJsonUri": f"file://{export}/difix/data.json"},
                        "runName": name, "output": f"file://{export}", "retries": 0, "gpusPerNode": gpus,
                        "models": {"uri": f"file://{models}"}, "hyperparameters": {**hyper, "batchSize": batch}}}
        run = genfab_run(tmp_path, doc, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        folder = export / "tuning_runs" / name
        config = json.loads((folder / "train_config.json").read_text())
        assert config["world_size"] == gpus and config["global_batch"] == 2
        assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["model_3.pkl", "model_6.pkl"]
        losses[name] = [json.loads(x)["loss_total"] for x in (folder / "logs" / "steps.jsonl").read_text().splitlines()]
    # bf16 autocast and NCCL's reduction order: the curves agree to bf16 precision, not bit for bit.
    assert losses["two-gpus"] == pytest.approx(losses["one-gpu"], rel=3e-2)
