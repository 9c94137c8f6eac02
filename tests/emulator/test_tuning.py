"""TuningRun in the operator: a 2-node run is one Indexed Job (every node at once) with a headless
Service and each Pod's group environment; when one node fails, the operator stops the other, and the
whole group starts again (the stage itself resumes from the newest checkpoint: see the storage tier's
resume test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.harness import Emulator
from tests.emulator.kubelet import Behaviour
from tests.emulator.reading import jobs, stage, wait_phase, wait_status
from tests.emulator.resources import EXAMPLE_SOURCE, tuning_run

pytestmark = pytest.mark.emulator
def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0]["env"]}


def test_a_two_node_run_restarts_as_a_group(emu: Emulator, tmp_path: Path) -> None:
    def script(stage_name: str, index: int, attempt: int) -> Behaviour:
        if attempt == 0:  # node 1 fails after a while; node 0 would wait for it forever
            return Behaviour(outcome="crash", seconds=1.5) if index == 1 else Behaviour(hold=True)
        return Behaviour(seconds=0.3)

    emu.kubelet.script = script
    doc = tuning_run(tmp_path, retries=1)
    ns = doc["metadata"]["namespace"]
    emu.apply(doc)
    job = emu.wait("the train Job", lambda: next(iter(jobs(emu, doc)), None))
    job_name = job["metadata"]["name"]
    assert (job["spec"]["completions"], job["spec"]["parallelism"], job["spec"]["backoffLimit"]) == (2, 2, 3)
    service = emu.wait("the headless Service", lambda: next(iter(emu.objects("services", ns)), None))
    assert service["metadata"]["name"] == job_name and service["spec"]["clusterIP"] == "None"
    first = emu.wait("both nodes", lambda: pods if len(pods := emu.objects("pods", ns)) == 2 else None)
    for pod in first:
        env = env_of(pod)
        assert pod["spec"]["subdomain"] == job_name
        assert env["GENFAB_RDZV_HOST"] == f"{job_name}-0.{job_name}" and env["GENFAB_NNODES"] == "2"
        assert env["GENFAB_NPROC_PER_NODE"] == "2"
        assert pod["metadata"]["labels"]["genfab.dev/process-group"] == emu.get("TuningRun", doc["metadata"]["name"],
                                                                              ns)["metadata"]["uid"]
    node0 = next(p["metadata"]["name"] for p in first
                 if p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "0")
    # node 1 crashes; the operator stops node 0 (it cannot finish alone), both are replaced
    emu.wait("node 0 stopped", lambda: all(p["metadata"]["name"] != node0 for p in emu.objects("pods", ns)),
             timeout=30)
    status = wait_phase(emu, doc, "Succeeded", timeout=60)
    assert stage(status, "train")["phase"] == "Succeeded"
    annotated = next(j for j in emu.objects("jobs", ns) if j["metadata"]["name"] == job_name)
    why = (annotated["metadata"].get("annotations") or {}).get("genfab.dev/no-progress", "")
    assert "node 1" in why and "restarts from its latest checkpoint" in why


def test_status_shows_steps_loss_and_checkpoints(emu: Emulator, tmp_path: Path) -> None:
    """Node 0 writes the training state; the status (and `kubectl get tuningruns`' PROGRESS and LOSS)
    follow it, with the newest checkpoint's URI."""
    emu.kubelet.script = lambda stage_name, index, attempt: Behaviour(hold=True)
    doc = tuning_run(tmp_path, nodes=1)
    emu.apply(doc)
    emu.wait("the node runs", lambda: emu.objects("pods", doc["metadata"]["namespace"]))
    run = tmp_path / "exp" / "tuning_runs" / "lr2e-5"
    (run / "_genfab").mkdir(parents=True, exist_ok=True)
    (run / "_genfab" / "training.json").write_text(json.dumps({
        "step": 40, "maxSteps": 100, "loss": 0.21, "imagesPerSecond": 12.5, "etaSeconds": 38.4,
        "checkpoints": ["model_20.pkl", "model_40.pkl", "../../etc/passwd", 7]}))
    status = wait_status(emu, doc, "training in the status", lambda st: (st.get("training") or {}).get("step") == 40)
    training = status["training"]
    assert status["progress"] == "40/100" and training["loss"] == 0.21 and training["etaSeconds"] == 38.4
    assert training["checkpoints"] == ["model_20.pkl", "model_40.pkl"]  # what is not a checkpoint name is dropped
    assert training["latestCheckpoint"] == f"file://{run}/checkpoints/model_40.pkl"
    emu.kubelet.release("train")
    wait_phase(emu, doc, "Succeeded")


def test_a_run_waits_for_its_dataset_job_and_trains_on_its_data_json(emu: Emulator, tmp_path: Path) -> None:
    """`datasetJobRef`: no Job while the DatasetJob is missing or running; once it succeeded, the train
    stage's config names the DatasetJob's `difix/data.json`."""
    emu.kubelet.script = lambda stage_name, index, attempt: Behaviour(seconds=0.2)
    doc = tuning_run(tmp_path, nodes=1)
    ns = doc["metadata"]["namespace"]
    doc["spec"]["dataset"] = {"datasetJobRef": "difix-data"}
    emu.apply(doc)
    waiting = wait_status(emu, doc, "waiting for the DatasetJob",
                          lambda st: stage(st, "train").get("reason") == "WaitingForReference")
    assert "DatasetJob/difix-data, which does not exist" in stage(waiting, "train")["message"]
    assert not jobs(emu, doc)
    data = {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "difix-data",
                                                                                    "namespace": ns},
            "spec": {"type": "difix", "output": f"file://{tmp_path}/data-out",
                     "difix": {"sources": [{"name": "proc", "dataset": "generic", "uri": f"file://{EXAMPLE_SOURCE}",
                                            "groupBy": "pattern", "groupPattern": "_(pair\\d+)_"}]}}}
    emu.apply(data)
    wait_phase(emu, data, "Succeeded", timeout=60)
    status = wait_phase(emu, doc, "Succeeded", timeout=60)
    assert stage(status, "train")["phase"] == "Succeeded"
    configs = [c for c in emu.objects("configmaps", ns) if c["metadata"]["labels"].get("genfab.dev/stage") == "train"]
    assert json.loads(configs[0]["data"]["stage.json"])["inputUris"] == [f"file://{tmp_path}/data-out/difix/data.json"]


def test_a_scenejob_with_a_tuning_run_ref_waits_for_the_run_and_takes_its_latest_checkpoint(
        emu: Emulator, tmp_path: Path) -> None:
    from tests.emulator.conftest import make_scenejob

    emu.kubelet.script = lambda stage_name, index, attempt: Behaviour(hold=stage_name == "train", seconds=0.1)
    run = tuning_run(tmp_path, nodes=1)
    ns = run["metadata"]["namespace"]
    scenes = make_scenejob(tmp_path, samples=2)
    scenes["metadata"]["namespace"] = ns
    scenes["spec"]["refinement"] = {"tuningRunRef": {"name": run["metadata"]["name"]}}
    emu.apply(scenes)
    emu.apply(run)
    waiting = wait_status(emu, scenes, "gaussians waits for the run",
                          lambda st: stage(st, "gaussians").get("reason") == "WaitingForReference"
                          and stage(st, "expansion").get("phase") == "Succeeded")
    assert "to write its final checkpoint" in stage(waiting, "gaussians")["message"]
    assert not [j for j in jobs(emu, scenes) if j["metadata"]["labels"]["genfab.dev/stage"] == "gaussians"]
    folder = tmp_path / "exp" / "tuning_runs" / "lr2e-5"
    (folder / "_genfab").mkdir(parents=True, exist_ok=True)
    (folder / "_genfab" / "training.json").write_text(json.dumps({
        "step": 100, "maxSteps": 100, "checkpoints": ["model_50.pkl", "model_100.pkl"]}))
    wait_status(emu, run, "the run's checkpoints", lambda st: (st.get("training") or {}).get("step") == 100)
    emu.kubelet.release("train")
    wait_phase(emu, run, "Succeeded")
    status = wait_phase(emu, scenes, "Succeeded", timeout=60)
    assert stage(status, "gaussians")["phase"] == "Succeeded"
    configs = [c for c in emu.objects("configmaps", ns)
               if c["metadata"]["labels"].get("genfab.dev/stage") == "gaussians"]
    config = json.loads(configs[0]["data"]["stage.json"])["config"]
    assert config["checkpoint"] == f"file://{folder}/checkpoints/model_100.pkl"
