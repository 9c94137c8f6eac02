"""The TuningRun's pure parts: how data.json paths map to experiment keys (each path form), the
global data order (independent of the launch shape, exactly resumable), checkpoint names, the
launch command and the gang environment both executors give a node."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from genfab.contract.names import checkpoint_step, latest_checkpoint
from genfab.stages.tuning.data import GlobalBatches
from genfab.stages.tuning.launch import Group, group_from_env, torchrun
from genfab.stages.tuning.stage import recipe, split_data_uri
from genfab.stages.tuning.staging import PathForm, StagingError, experiment_key, plan_staging


def entry(path: str) -> dict[str, str]:
    return {"image": f"{path}/image.png", "target_image": f"{path}/target_image.jpg",
            "ref_image": f"{path}/ref_image.jpg", "prompt": "remove degradation"}


@pytest.mark.parametrize(("path", "form", "key"), [
    ("samples/a/image.png", PathForm("relative"), "samples/a/image.png"),
    ("/data/samples/a/image.png", PathForm("prefix", "/data"), "samples/a/image.png"),
    ("/mnt/exp/v1/samples/a/image.png", PathForm("prefix", "/mnt/exp/v1"), "samples/a/image.png"),
    ("/home/lab/exp/samples/a/image.png", PathForm("absolute", local_root="/home/lab/exp"), "samples/a/image.png"),
])
def test_each_path_form_maps_to_its_experiment_key(path: str, form: PathForm, key: str) -> None:
    assert experiment_key(path, form, lambda p: False) == key


def test_paths_outside_the_experiment_are_refused_or_used_in_place() -> None:
    with pytest.raises(StagingError, match="leaves the experiment"):
        experiment_key("../secrets/image.png", PathForm(), lambda p: False)
    with pytest.raises(StagingError, match="neither under the export's pathPrefix /data"):
        experiment_key("/elsewhere/image.png", PathForm("prefix", "/data"), lambda p: False)
    assert experiment_key("/mnt/lab/image.png", PathForm("prefix", "/data"), lambda p: True) is None


def test_the_staging_plan_rewrites_every_image_once(tmp_path: Path) -> None:
    data = {"train": {"s1": entry("/data/samples/s1"), "s2": {**entry("/data/samples/s2"),
                                                           "ref_image": "/data/samples/s1/ref_image.jpg"}},
            "test": {"t1": entry("/data/samples/t1")}}
    plan = plan_staging(data, PathForm("prefix", "/data"), tmp_path, lambda p: False)
    assert len(plan.keys) == 8 and len(set(plan.keys)) == 8  # the shared reference is fetched once
    assert plan.data["train"]["s2"]["ref_image"] == str(tmp_path / "samples/s1/ref_image.jpg")
    assert plan.data["test"]["t1"]["image"] == str(tmp_path / "samples/t1/image.png")
    assert plan.data["train"]["s1"]["prompt"] == "remove degradation"
    with pytest.raises(StagingError, match="no `train` map"):
        plan_staging({"test": {}}, PathForm(), tmp_path, lambda p: False)
    with pytest.raises(StagingError, match=r"train\.s1: needs string `image`"):
        plan_staging({"train": {"s1": {"image": 3}}}, PathForm(), tmp_path, lambda p: False)


def test_the_data_order_does_not_depend_on_the_launch_shape() -> None:
    """2 ranks x batch 1 see exactly the samples (and VAE noise seeds) of 1 rank x batch 2, step by step."""
    one = GlobalBatches(7, 2, 0, 1, seed=3)
    ranks = [GlobalBatches(7, 1, r, 2, seed=3) for r in range(2)]
    for b in range(20):  # several epochs, across epoch boundaries
        assert one.micro_batch(b) == ranks[0].micro_batch(b) + ranks[1].micro_batch(b)
    seen = [i for b in range(7) for i, _ in GlobalBatches(7, 1, 0, 1, seed=3).micro_batch(b)]
    assert sorted(seen) == list(range(7))  # one epoch is a permutation
    resumed = iter(GlobalBatches(7, 2, 0, 1, seed=3, start=5))
    assert next(resumed) == one.micro_batch(5)
    assert GlobalBatches(7, 2, 0, 1, seed=4).micro_batch(0) != one.micro_batch(0)


def test_checkpoint_names() -> None:
    assert checkpoint_step("checkpoints/model_1200.pkl") == 1200
    assert checkpoint_step("model_x.pkl") is None and checkpoint_step(".model_3.pkl.partial") is None
    assert latest_checkpoint(["checkpoints/model_900.pkl", "checkpoints/model_1200.pkl", "eval/x.json"]) == (
        1200, "checkpoints/model_1200.pkl")
    assert latest_checkpoint([]) is None


def test_the_launch_follows_the_group() -> None:
    env = {"GENFAB_NNODES": "2", "JOB_COMPLETION_INDEX": "1", "GENFAB_NPROC_PER_NODE": "4",
           "GENFAB_RDZV_HOST": "run-train-0.run-train", "GENFAB_RDZV_PORT": "29500"}
    group = group_from_env(env, nodes=1, procs_per_node=1)
    assert group == Group(2, 1, 4, "run-train-0.run-train", 29500) and group.world_size == 8
    cmd = torchrun(group, ["-m", "genfab.stages.tuning.worker", "job.json"], python="python")
    assert cmd[:3] == ["python", "-m", "torch.distributed.run"]
    assert {"--nnodes=2", "--node-rank=1", "--nproc-per-node=4", "--master-addr=run-train-0.run-train",
            "--master-port=29500", "--max-restarts=0"} <= set(cmd)
    assert group_from_env({}, nodes=1, procs_per_node=2) == Group(1, 0, 2, "127.0.0.1", 29500)


def test_data_uri_and_recipe() -> None:
    assert split_data_uri("s3://b/exp/difix/data.json") == ("s3://b/exp", "difix/data.json")
    assert split_data_uri("s3://b/exp/mine.json") == ("s3://b/exp", "mine.json")
    base = {"learning_rate": 2e-5, "max_steps": 10, "eval_every": 5, "batch_size": 1}
    assert recipe(base) == recipe({**base, "max_steps": 20, "eval_every": 1})  # a run may be extended
    assert recipe(base) != recipe({**base, "learning_rate": 1e-5})


def test_a_gang_stage_gets_its_group_environment() -> None:
    from genfab.api.resources import KINDS
    from genfab.planner import plan
    from genfab.sequencing import gang_env

    doc = {"apiVersion": "genfab.dev/v1alpha1", "kind": "TuningRun", "metadata": {"name": "tr"},
           "spec": {"trainer": "difix", "dataset": {"dataJsonUri": "s3://lab/exp/difix/data.json"}, "runName": "r1",
                    "output": "s3://lab/exp", "gpusPerNode": 4, "nodes": 2}}
    train = plan(KINDS["TuningRun"].model_validate(doc)).stage("train")
    assert train.gang and train.fixed_shards == 2 and train.resources.gpus == 4
    assert gang_env(train, 2, "tr-train-0.svc", 29500, "uid/train/abc") == {
        "GENFAB_NNODES": "2", "GENFAB_NPROC_PER_NODE": "4", "GENFAB_RDZV_HOST": "tr-train-0.svc",
        "GENFAB_RDZV_PORT": "29500", "GENFAB_GROUP_ID": "uid/train/abc"}


@pytest.mark.parametrize(("ids", "mine", "expected"), [
    (["g", "g", "g"], "g", []),
    (["g", "h", "g"], "g", [1]),  # a process of another group took rank 1
    (["old", "g"], "g", [0]),  # a node of an earlier attempt
    (["", "g"], "g", [0]),  # a worker started without a group id is not of this group
])
def test_workers_of_another_group_are_named(ids: list[str], mine: str, expected: list[int]) -> None:
    from genfab.stages.tuning.launch import strangers

    assert strangers(ids, mine) == expected


def test_the_lab_trainer_command_gets_the_group_shape() -> None:
    from genfab.stages.tuning.lab import difix3d_arguments, launched

    group = Group(2, 1, 4, "tr-0.tr", 29500)
    acc = launched(group, ["accelerate", "launch", "--mixed_precision=bf16", "src/train_difix.py"], "bf16")
    assert acc[:2] == ["accelerate", "launch"] and acc[-2:] == ["--mixed_precision=bf16", "src/train_difix.py"]
    assert {"--num_machines=2", "--machine_rank=1", "--num_processes=8", "--main_process_ip=tr-0.tr",
            "--main_process_port=29500", "--multi_gpu"} <= set(acc)
    tr = launched(group, ["torchrun", "train.py"], "bf16")
    assert tr[1:3] == ["-m", "torch.distributed.run"] and "--node-rank=1" in tr and tr[-1] == "train.py"
    py = launched(group, ["python", "src/train_difix.py", "--x"], "bf16")
    assert py[-2:] == ["src/train_difix.py", "--x"] and "--nproc-per-node=4" in py
    binary = launched(group, ["/opt/train"], "bf16")
    assert binary[-2:] == ["--no-python", "/opt/train"]
    args = difix3d_arguments({"learning_rate": 2e-5, "batch_size": 4, "max_steps": 100, "mixed_precision": "bf16"},
                             Path("/d/data.json"), Path("/r"), "lr", Path("/r/checkpoints/model_50.pkl"))
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    assert pairs["--dataset_path"] == "/d/data.json" and pairs["--output_dir"] == "/r"
    assert pairs["--train_batch_size"] == "4" and pairs["--max_train_steps"] == "100"
    assert pairs["--resume"] == "/r/checkpoints/model_50.pkl" and pairs["--tracker_run_name"] == "lr"
