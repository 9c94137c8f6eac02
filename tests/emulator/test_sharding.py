"""Two operator processes sharing the work (`--shard 0/2`, `--shard 1/2`): every resource is reconciled
by the one shard that owns its UID and by no other, a reference to a resource the other shard owns is
followed, and a Job made before Jobs carried their shard bucket is labelled so its shard watches it;
and on an API server without sharded watches (before Kubernetes 1.36), each shard drops the others'."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genfab.operator.sharding import Shard, bucket_label
from tests.emulator.cluster import res_for
from tests.emulator.conftest import make_scenejob
from tests.emulator.harness import Emulator, OperatorProcess
from tests.emulator.kubelet import Behaviour
from tests.emulator.reading import jobs, stage, wait_phase, wait_status
from tests.emulator.resources import EXAMPLE_SOURCE, tuning_run

pytestmark = pytest.mark.emulator
SHARDS = [Shard(0, 2), Shard(1, 2)]
STARTED = re.compile(r"SceneJob (\S+)/(\S+): stage \S+ started")


@pytest.fixture(scope="module", params=[True, False], ids=["server-filters", "server-ignores-shardSelector"])
def sharded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Emulator, list[OperatorProcess]]]:
    emu = Emulator().start()
    emu.cluster.sharded_watches = request.param
    emu.prepare_namespace("lab-first")  # one resource before the shards start: their startup check can tell
    emu.apply(make_scenejob(Path(str(tmp_path_factory.mktemp("first"))), samples=1) | {
        "metadata": {"name": "first", "namespace": "lab-first"}}, prepare=False)
    ops = [OperatorProcess(emu, tmp_path_factory.mktemp(f"shard-{s.index}"), GENFAB_SHARD=str(s)).start()
           for s in SHARDS]
    try:
        for op in ops:
            emu.wait("operator liveness", op.healthy, timeout=60, interval=0.2)
        yield emu, ops
    finally:
        for op in ops:
            op.stop()
        emu.stop()


@pytest.fixture()
def emu(sharded: tuple[Emulator, list[OperatorProcess]]) -> Iterator[Emulator]:
    emulator, ops = sharded
    emulator.kubelet.script = lambda stage_name, index, attempt: Behaviour(seconds=0.05)
    yield emulator
    for op in ops:
        if op.process is not None and op.process.poll() is not None:
            raise AssertionError(f"shard {op.env['GENFAB_SHARD']} died:\n{op.logs()[-4000:]}")


def test_each_resource_is_reconciled_by_the_shard_that_owns_its_uid_only(
        emu: Emulator, sharded: tuple[Emulator, list[OperatorProcess]], tmp_path: Path) -> None:
    docs: list[dict[str, Any]] = []
    uids: dict[str, str] = {}
    # At least eight, and more until both shards own one: UIDs are random, and eight land on one shard
    # with p = 1/128 (32 at most: 2^-31).
    while len(docs) < 8 or (len(docs) < 32 and len({SHARDS[0].owns(uid) for uid in uids.values()}) < 2):
        doc = make_scenejob(tmp_path, samples=1)
        doc["spec"]["output"] += f"/{doc['metadata']['name']}"  # each its own output folder
        docs.append(doc)
        uids[doc["metadata"]["name"]] = emu.apply(doc)["metadata"]["uid"]
    emulator, ops = sharded
    try:  # one deadline for all of them (a loaded 2-core CI machine ran one shard's eight in 60 s+)
        emu.wait("every SceneJob Succeeded", lambda: all(
            emu.status("SceneJob", d["metadata"]["name"], d["metadata"]["namespace"]).get("phase") == "Succeeded"
            for d in docs), timeout=240, interval=0.2)
    except AssertionError as failed:
        phases = {d["metadata"]["name"]: emu.status("SceneJob", d["metadata"]["name"], d["metadata"]["namespace"])
                  for d in docs}
        logs = "\n".join(f"--- shard {op.env['GENFAB_SHARD']}:\n{op.logs()[-6000:]}" for op in ops)
        raise AssertionError(f"{failed}\nstatus: {phases}\n{logs}") from None
    said = ("the API server filters resources by shard" if emulator.cluster.sharded_watches
            else "the API server ignores shard selectors")
    assert all(said in op.logs() for op in ops)
    by_shard = {str(s): {m[2] for m in STARTED.finditer(op.logs())} for s, op in zip(SHARDS, ops, strict=True)}
    for shard in SHARDS:
        assert by_shard[str(shard)] & set(uids) == {n for n, uid in uids.items() if shard.owns(uid)}, by_shard
    assert by_shard["0/2"] and by_shard["1/2"], by_shard
    for doc in docs:  # the Jobs and Pods carry their resource's bucket: the other shard never sees them
        for job in jobs(emu, doc):
            assert job["metadata"]["labels"]["genfab.dev/shard-bucket"] == bucket_label(uids[doc["metadata"]["name"]])


def test_a_reference_to_a_resource_the_other_shard_owns_is_followed(emu: Emulator, tmp_path: Path) -> None:
    """A TuningRun waits for a DatasetJob the other shard reconciles: it reads it by GET (no watch event
    of the other shard's resource reaches it) and trains once the DatasetJob has succeeded."""
    emu.kubelet.script = lambda stage_name, index, attempt: Behaviour(hold=stage_name != "train", seconds=0.2)
    run = tuning_run(tmp_path, nodes=1)
    ns = run["metadata"]["namespace"]
    data = {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "difix-data",
                                                                                    "namespace": ns},
            "spec": {"type": "difix", "output": f"file://{tmp_path}/data-out",
                     "difix": {"sources": [{"name": "proc", "dataset": "generic", "uri": f"file://{EXAMPLE_SOURCE}",
                                            "groupBy": "pattern", "groupPattern": "_(pair\\d+)_"}]}}}
    data_uid = emu.apply(data)["metadata"]["uid"]
    run["spec"]["dataset"] = {"datasetJobRef": "difix-data"}
    for attempt in range(20):  # until the other shard owns the TuningRun (p = 1/2 each; a waiting run has no Job)
        run["metadata"]["name"] = f"difix-run-{attempt}"
        if SHARDS[0].owns(emu.apply(copy.deepcopy(run))["metadata"]["uid"]) != SHARDS[0].owns(data_uid):
            break
        emu.delete("tuningruns", run["metadata"]["name"], ns)
    else:
        raise AssertionError("twenty TuningRun UIDs all on the DatasetJob's shard")
    wait_status(emu, run, "waiting for the DatasetJob",
                lambda st: stage(st, "train").get("reason") == "WaitingForReference")
    for job in jobs(emu, data):
        emu.kubelet.release(job["metadata"]["labels"]["genfab.dev/stage"])
    emu.kubelet.script = lambda stage_name, index, attempt: Behaviour(seconds=0.2)
    wait_phase(emu, data, "Succeeded", timeout=60)
    assert stage(wait_phase(emu, run, "Succeeded", timeout=60), "train")["phase"] == "Succeeded"


def test_a_job_without_its_shard_bucket_is_labelled_by_its_shard(emu: Emulator, tmp_path: Path) -> None:
    """An operator older than sharding made Jobs without the label: the owning shard labels them (its
    resync), and from then on its watch sees them."""
    emu.kubelet.script = lambda stage_name, index, attempt: Behaviour(hold=True)
    doc = make_scenejob(tmp_path, samples=1)
    uid = emu.apply(doc)["metadata"]["uid"]
    wait_phase(emu, doc, "Running", timeout=60)
    job = emu.wait("the first Job", lambda: jobs(emu, doc), timeout=30)[0]
    key = (res_for("jobs"), job["metadata"]["namespace"], job["metadata"]["name"])
    emu.call(lambda: emu.cluster.patch(key, {"metadata": {"labels": {"genfab.dev/shard-bucket": None}}}))
    assert "genfab.dev/shard-bucket" not in jobs(emu, doc)[0]["metadata"]["labels"]
    emu.wait("the shard's resync labels the Job", lambda: jobs(emu, doc)[0]["metadata"]["labels"].get(
        "genfab.dev/shard-bucket") == bucket_label(uid), timeout=30)
    emu.kubelet.release("scaffold")
    emu.kubelet.script = lambda stage_name, index, attempt: Behaviour(seconds=0.05)
    for name in ("scaffold", "expansion", "gaussians"):
        emu.kubelet.release(name)
    wait_phase(emu, doc, "Succeeded", timeout=60)
