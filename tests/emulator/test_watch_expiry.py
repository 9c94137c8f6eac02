"""A watch that expires (410 Gone) while objects are deleted: kopf lists again and replays what the list
holds, but nothing says what was deleted meanwhile. The operator lists its collections again every
`GENFAB_RELIST_SECONDS` and forgets what the API server no longer has (genfab.operator.relist): a resource
deleted then leaves its metrics, and a stage Job deleted then is made again instead of waited on forever."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulator.cluster import res_for
from tests.emulator.conftest import make_scenejob
from tests.emulator.harness import Emulator, OperatorProcess, own_cluster
from tests.emulator.kubelet import Behaviour
from tests.emulator.reading import counts, jobs, wait_status

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def relisting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, OperatorProcess]]:
    with own_cluster(tmp_path_factory.mktemp("operator"), GENFAB_RELIST_SECONDS="1",
                     GENFAB_RESYNC_SECONDS="1") as running:
        yield running


def running_scenejobs(op: OperatorProcess) -> float:
    found = re.search(r'^genfab_resources\{kind="SceneJob",phase="Running"\} (\S+)$', op.metrics(), re.M)
    return float(found[1]) if found else 0.0


def test_what_was_deleted_while_the_watch_was_away_is_forgotten(relisting: tuple[Emulator, OperatorProcess],
                                                                tmp_path: Path) -> None:
    emu, op = relisting
    emu.kubelet.script = lambda stage_name, index, attempt: Behaviour(hold=True)
    docs = []
    for name in ("kept", "deleted"):
        (tmp_path / name).mkdir()
        doc = make_scenejob(tmp_path / name, samples=1)
        doc["metadata"]["name"] = name
        emu.apply(doc)
        docs.append(doc)
    kept, deleted = docs
    for doc in docs:
        wait_status(emu, doc, "scaffold running", lambda st: counts(st, "scaffold")[0] == "Running")
    emu.wait("both counted Running", lambda: running_scenejobs(op) == 2, timeout=30)
    (first_job,) = jobs(emu, kept)
    emu.cluster.watches_held = True  # the watches miss what happens now
    try:
        emu.delete("scenejobs", deleted["metadata"]["name"], deleted["metadata"]["namespace"])
        # the other's running stage Job, its Pods left (their events are missed too)
        emu.call(lambda: emu.cluster.delete((res_for("jobs"), first_job["metadata"]["namespace"],
                                             first_job["metadata"]["name"]), cascade=False))
        emu.expire_watches()  # reconnecting from their last version: 410 Gone, then a new list
    finally:
        emu.cluster.watches_held = False
    emu.wait("the deleted SceneJob forgotten (metrics)", lambda: running_scenejobs(op) == 1, timeout=30)
    again = emu.wait("the kept SceneJob's stage Job made again", lambda: [
        j for j in jobs(emu, kept) if j["metadata"]["uid"] != first_job["metadata"]["uid"]], timeout=30)
    assert again[0]["metadata"]["name"] == first_job["metadata"]["name"]
    log = op.logs()
    assert re.search(rf"SceneJob {deleted['metadata']['namespace']}/deleted was deleted while the watch was away", log)
    assert re.search(rf"Job {kept['metadata']['namespace']}/{first_job['metadata']['name']} was deleted while", log)
    assert "Traceback" not in log
