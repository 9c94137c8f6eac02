"""Stages that share a worker on a cluster (`PlannedStage.shares_worker`): the group's first stage gets one
worker Job whose Pods (the runtime's own `GroupFeed`) take the shards of every member, each from its own
cursor; the hosted member gets no Job, its config in the run's storage, its status read through the shared
Job. A failed shard of the first stage fails the run without leaving the shared workers waiting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genfab.contract.hosted import HostedStage
from genfab.contract.names import hosted_key, worker_key
from genfab.storage import open_storage
from tests.emulator.harness import own_cluster
from tests.emulator.kubelet import Behaviour
from tests.emulator.reading import counts, jobs, stage, wait_phase
from tests.toy_pipeline.jobs import MODULES

pytestmark = pytest.mark.emulator


def shared_job(tmp: Path, samples: int, **spec: Any) -> dict[str, Any]:
    """The toy `checksum-shared` DatasetJob: `digest`, then `upper` streaming from it, declared to share a
    worker (holder `upper`), two files a shard."""
    inputs = tmp / "in"
    inputs.mkdir()
    for i in range(samples):
        (inputs / f"f{i:03d}.txt").write_bytes(b"x%d" % i)
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "shared", "namespace":
                                                                                     "lab-shared"},
            "spec": {"type": "checksum-shared", "output": f"file://{tmp}/out", "shared": {"uri": f"file://{inputs}"},
                     **spec}}


def test_stages_that_share_models_run_in_the_first_ones_worker_job(tmp_path: Path) -> None:
    with own_cluster(tmp_path, GENFAB_PIPELINES=MODULES) as (emu, op):
        emu.kubelet.script = lambda stage_, index, attempt: Behaviour(seconds=0.05)
        doc = shared_job(tmp_path, samples=8, parallelism=2)
        emu.apply(doc)
        st = wait_phase(emu, doc, "Succeeded", "Failed", timeout=60)
        assert st["phase"] == "Succeeded", (st, op.logs()[-3000:])
        for name in ("digest", "upper"):
            assert counts(st, name)[:4] == ("Succeeded", 8, 8, 0)
        (job,) = jobs(emu, doc)  # one Job: digest's, hosting upper
        meta = job["metadata"]
        hosted = json.loads(meta["annotations"]["genfab.dev/hosted.upper"])
        assert meta["labels"]["genfab.dev/stage"] == "digest"
        assert meta["annotations"]["genfab.dev/hosts"] == f"upper@{hosted['configHash'][:10]}"
        assert (hosted["shards"], hosted["streamsFrom"]) == (4, "digest")
        env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert json.loads(env["GENFAB_HOSTED"]) == [{"stage": "upper", "configHash": hosted["configHash"]}]
        assert job["spec"]["completions"] == 2 and "readinessProbe" in job["spec"]["template"]["spec"]["containers"][0]
        assert stage(st, "upper")["jobName"] == stage(st, "digest")["jobName"] == meta["name"]
        run = open_storage(f"file://{tmp_path}/out")
        doc_ = HostedStage.model_validate_json(run.read_bytes(hosted_key("upper", hosted["configHash"])))
        assert doc_.config is not None and doc_.shards == 4 and not doc_.stopped
        # upper's shards ran on the shared Job's workers, each from upper's own cursor and records
        assert any(run.exists(worker_key("upper", hosted["configHash"], w)) for w in (0, 1))


def test_a_failed_shard_of_the_first_stage_ends_the_shared_job_and_fails_the_run(tmp_path: Path) -> None:
    """digest's shard 3 fails for good (bad input): the shared worker goes on, upper takes every shard whose
    input ended, the workers end and the run fails on digest's shard."""
    with own_cluster(tmp_path, GENFAB_PIPELINES=MODULES) as (emu, _):
        emu.kubelet.script = lambda stage_, index, attempt: Behaviour(
            seconds=0.05, outcome="bad-input" if (stage_, index) == ("digest", 3) else "succeed")
        doc = shared_job(tmp_path, samples=8, parallelism=1)
        emu.apply(doc)
        st = wait_phase(emu, doc, "Succeeded", "Failed", timeout=60)
        assert st["phase"] == "Failed", st
        assert counts(st, "digest")[0] == "Failed" and counts(st, "digest")[2] == 6
        assert counts(st, "upper")[2] == 6  # what digest committed
        (job,) = jobs(emu, doc)
        assert not job["status"].get("active")  # the shared Job's worker ended
