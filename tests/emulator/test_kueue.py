"""genfab's Jobs under Kueue (emulated: tests.emulator.kueue). A streaming stage's Job changes its
parallelism as its input is committed; Kueue suspends a running Job whose Pod count changed unless it is
elastic. So a queued streaming Job is elastic, and with `kueue.elasticJobs` off a queued resource does not
stream: neither is ever suspended by Kueue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.emulator.cluster import GenfabCluster
from tests.emulator.harness import Emulator, own_cluster
from tests.emulator.kubelet import Behaviour
from tests.emulator.kueue import ELASTIC, JOBS, EmulatedKueue
from tests.emulator.reading import counts, wait_phase
from tests.emulator.test_streaming import STAGES, stage_job, streaming_job

pytestmark = pytest.mark.emulator


def queued_job(name: str, elastic: bool) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": {"kueue.x-k8s.io/queue-name": "lab-gpus"},
                         "annotations": {ELASTIC: "true"} if elastic else {}},
            "spec": {"completions": 4, "parallelism": 1, "template": {"spec": {"containers": []}}}}


@pytest.mark.parametrize("elastic", [False, True])
def test_the_emulated_kueue_suspends_a_running_job_whose_pods_changed_unless_it_is_elastic(elastic: bool) -> None:
    """What the tests below rely on: admitted at 1 Pod, raised to 3 while it runs, a Job is suspended and
    queued again (NoMatchingWorkload), or, elastic, resized within the quota (3 Pods here: up to 3)."""
    cluster = GenfabCluster()
    kueue = EmulatedKueue(cluster, quota=3)
    job = cluster.create(JOBS, "lab", queued_job("j", elastic))
    key = (JOBS, "lab", "j")
    kueue.sync()
    assert cluster.store[key]["spec"]["suspend"] is True  # queued: suspended at creation
    kueue.sync()
    assert cluster.store[key]["spec"]["suspend"] is False and kueue.admitted_pods(cluster.store[key]) == 1
    cluster.patch(key, {"spec": {"parallelism": 3}})
    kueue.sync()
    if elastic:
        assert kueue.evictions == [] and kueue.resizes == [("j", 1, 3)]
        assert cluster.store[key]["spec"]["suspend"] is False and kueue.admitted_pods(cluster.store[key]) == 3
    else:
        assert kueue.evictions == ["j"] and cluster.store[key]["spec"]["suspend"] is True
        assert kueue.admitted_pods(cluster.store[key]) == 0
    assert job["metadata"]["uid"] in kueue.workloads


def with_kueue(emu: Emulator) -> None:
    emu.kubelet.kueue = EmulatedKueue(emu.cluster, quota=6)


@pytest.mark.parametrize("elastic", [True, False])
def test_a_queued_resource_streams_as_elastic_jobs_or_not_at_all_and_kueue_suspends_none(
        tmp_path: Path, elastic: bool) -> None:
    """A relighting DatasetJob in a Kueue queue of 6 Pods, segment's last shard held a while. Elastic Jobs
    (the default): albedo and degrade start while segment runs, as elastic Jobs whose parallelism the
    operator raises and Kueue resizes. `kueue.elasticJobs: false`: no stage streams, none is elastic, and
    no Job's parallelism changes. Either way no Job is suspended by Kueue, and every stage ends with every
    sample."""
    env = {} if elastic else {"GENFAB_KUEUE_ELASTIC_JOBS": "false"}
    (tmp_path / "operator").mkdir()
    with own_cluster(tmp_path / "operator", prepare=with_kueue, **env) as (emu, _):
        kueue = emu.kubelet.kueue
        assert kueue is not None
        slow = {("segment", 1): 1.5, ("segment", 5): 1.5}  # albedo starts on shard 0 alone: 1 worker, then 2
        emu.kubelet.script = lambda stage_, index, attempt: Behaviour(seconds=slow.get((stage_, index), 0.05))
        doc = streaming_job(tmp_path, "queued", samples=12, parallelism=2, queueName="lab-gpus")
        emu.apply(doc)
        st = wait_phase(emu, doc, "Succeeded", "Failed", timeout=60)
        assert st["phase"] == "Succeeded", st
        for name in STAGES:
            assert counts(st, name)[:4] == ("Succeeded", 12, 12, 0)
        assert kueue.evictions == []
        albedo = stage_job(emu, doc, "albedo")
        assert albedo is not None
        annotations = albedo["metadata"]["annotations"]
        if elastic:
            assert annotations.get(ELASTIC) == "true" and annotations.get("genfab.dev/streams-from") == "segment"
            assert any("-albedo-" in name for name, before, after in kueue.resizes if after > before), \
                kueue.resizes
        else:
            assert ELASTIC not in annotations and "genfab.dev/streams-from" not in annotations
            assert kueue.resizes == []
