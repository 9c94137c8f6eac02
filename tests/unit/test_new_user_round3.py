"""A new user's third round, the decisions behind it as tables: whose record an output holds, what a
missing or empty input says, the gate's own phase and the command that goes on after it, a run whose
holder is gone, the exit code a stopped shard reports."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from genfab.api import parse_resource
from genfab.api.status import ResourceStatus
from genfab.api.status_document import StatusDocument
from genfab.cli.follow import status_lines
from genfab.cli.run import next_command
from genfab.local.input_listing import list_input
from genfab.local.lease import LEASE_KEY, LeaseDoc, gone_holder, gone_message
from genfab.local.ownership import TAKEN_OVER_DIR, Owner, foreign_record, owner_of, refusal, take_over
from genfab.planner import plan
from genfab.sequencing.manual import gate_status
from genfab.stages.runtime.loop import interrupted_exit
from genfab.storage import open_storage
from genfab.storage.local import FileStorage

MINE = Owner("DatasetJob", "relight-a")


@pytest.mark.parametrize(("doc", "owner"), [
    ({"kind": "DatasetJob", "metadata": {"name": "relight-a"}}, MINE),
    ({"kind": "SceneJob", "metadata": {"name": "relight-a"}}, Owner("SceneJob", "relight-a")),
    ({"kind": "DatasetJob"}, None),
    ({"kind": 3, "metadata": {"name": "x"}}, None),
    ({"kind": "DatasetJob", "metadata": ["x"]}, None),
    ({"kind": "", "metadata": {"name": "x"}}, None),
    ({"kind": "DatasetJob", "metadata": {"name": "../../etc"}}, None),  # would become a folder: names nobody
    ({"kind": "Job\x1b[2J", "metadata": {"name": "x"}}, None),  # a terminal escape
])
def test_the_owner_a_status_document_names(doc: dict[str, Any], owner: Owner | None) -> None:
    assert owner_of(doc) == owner


@pytest.mark.parametrize(("theirs", "refused", "says"), [
    (MINE, False, ""),
    (Owner("DatasetJob", "relight-b"), True, "the record of DatasetJob/relight-b, not DatasetJob/relight-a's"),
    (Owner("SceneJob", "relight-a"), True, "SceneJob/relight-a"),  # the same name of another kind
    (None, True, "a status.json genfab did not write"),
])
def test_a_run_refuses_another_resources_record(theirs: Owner | None, refused: bool, says: str) -> None:
    line = refusal(MINE, theirs, "file://./out")
    assert (line is not None) == refused
    if line is not None:
        assert says in line and "--force" in line and "\n" not in line


def test_a_takeover_keeps_the_old_record_beside_the_new(tmp_path: Path) -> None:
    store = FileStorage(f"file://{tmp_path}", tmp_path)
    status = {"kind": "DatasetJob", "metadata": {"name": "relight-b"}, "status": {"phase": "Succeeded"}}
    store.write_bytes("_genfab/status.json", json.dumps(status).encode())
    store.write_bytes("_genfab/summary.json", b'{"name": "relight-b"}')
    assert foreign_record(FileStorage(f"file://{tmp_path}/new", tmp_path / "new"), MINE, "x") is None  # new output
    found = foreign_record(store, MINE, "file://out")
    assert found is not None and found[1] == Owner("DatasetJob", "relight-b")
    note = take_over(store, found[1], now=0)
    kept = f"{TAKEN_OVER_DIR}/DatasetJob-relight-b-19700101T000000Z"
    assert kept in note
    assert json.loads(store.read_bytes(f"{kept}/status.json")) == status
    assert store.read_bytes(f"{kept}/summary.json") == b'{"name": "relight-b"}'
    store.write_bytes("_genfab/status.json", b"[1, 2]")  # not genfab's shape: refused as nobody's
    assert "did not write" in (foreign_record(store, MINE, "o") or ("", None))[0]


def _relighting(tmp_path: Path, folder: str) -> Any:
    return plan(parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "r"},
        "spec": {"type": "relighting", "output": f"file://{tmp_path}/out",
                 "relighting": {"input": {"uri": f"file://{tmp_path}/{folder}"}}}}))


@pytest.mark.parametrize(("files", "samples", "says"), [
    (None, None, "no such folder"),
    ({}, None, "the folder is empty"),
    ({"sub/a.png": b"x"}, None, "no file directly in the folder (1 in subfolders"),
    ({"a.txt": b"x", "b.md": b"y"}, None, "none of its 2 file(s) has a suffix that is read"),
    ({"a.png": b"x", "b.jpg": b"y", "c.txt": b"z"}, 2, ""),
])
def test_the_input_is_listed_before_anything_is_written(tmp_path: Path, files: dict[str, bytes] | None,
                                                        samples: int | None, says: str) -> None:
    if files is not None:
        (tmp_path / "in").mkdir()
        for name, data in files.items():
            (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "in" / name).write_bytes(data)
    listing = list_input(_relighting(tmp_path, "in"), lambda uri: open_storage(uri), {})
    assert listing.samples == samples and listing.stage == "segment"
    assert says in listing.problem if says else not listing.problem
    assert not (tmp_path / "out").exists()


def test_an_s3_input_without_credentials_is_not_listed_and_says_why(tmp_path: Path) -> None:
    p = plan(parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "r"},
        "spec": {"type": "relighting", "output": "file:///tmp/o", "relighting": {"input": {"uri": "s3://lab-bucket/in"}}}}))
    listing = list_input(p, lambda uri: pytest.fail("listed without credentials"),
                         {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")})
    assert listing.samples is None and not listing.problem and "no S3 credentials" in listing.note


@pytest.mark.parametrize(("phase", "gates", "expected"), [
    ("Succeeded", {"AwaitingSelection": "1 sample(s) await"}, "AwaitingSelection"),
    ("Running", {"AwaitingSelection": "1 sample(s) await"}, "AwaitingSelection"),
    ("Failed", {"AwaitingSelection": "1 sample(s) await"}, "Failed"),  # a failure is said first
    ("Succeeded", {"AwaitingSelection": ""}, "Succeeded"),  # chosen
    ("Succeeded", {}, "Succeeded"),
])
def test_a_waiting_gate_is_a_phase_of_its_own(phase: str, gates: dict[str, str], expected: str) -> None:
    status = gate_status(ResourceStatus(phase=phase), gates, "2026-01-01T00:00:00Z", 1)
    assert status.phase == expected
    for condition, message in gates.items():
        found = next(c for c in status.conditions if c.type == condition)
        assert (found.status, found.reason) == (("True", "Waiting") if message else ("False", "Chosen"))


def _manual(only: list[str] | None) -> Any:
    return plan(parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "we"},
        "spec": {"pipeline": "worldexplorer", "input": {"manifest": "file:///data/metadata.json"},
                 "output": "file:///out", **({"onlyStages": only} if only else {}),
                 "worldexplorer": {"scaffold": {"method": "scaffold_gen", "selection": "manual"},
                                   "expansion": {"method": "walk", "geometry": "scene"}}}}))


@pytest.mark.parametrize(("only", "cuda", "expected"), [
    (None, True, "then run `genfab run we.yaml` again"),  # everything selected: a re-run goes on
    (None, False, "then run `genfab run we.yaml` again on a machine with a CUDA GPU (expansion, gaussians need one; "
                  "this one would refuse them)"),
    (["scaffold"], False, "then run `genfab run we.yaml` again here; expansion, gaussians (not selected) need a "
                          "CUDA GPU: on a machine with one, `genfab run we.yaml --only expansion,gaussians`"),
    (["scaffold"], True, "then run `genfab run we.yaml --only expansion,gaussians` to go on"),
])
def test_the_command_after_the_gate_is_the_one_this_machine_can_run(only: list[str] | None, cuda: bool,
                                                                     expected: str) -> None:
    assert next_command(_manual(only), "scaffold", "we.yaml", cuda) == expected


def _lease(expires_at: float, pid: int = 4242) -> bytes:
    return json.dumps({"holder": "ann@box", "host": "box", "pid": pid, "run_id": "r", "resource": "DatasetJob/x",
                       "acquired_at": 0.0, "expires_at": expires_at}).encode()


@pytest.mark.parametrize(("lease", "alive", "gone"), [
    (None, None, False),  # no run ever held it
    (_lease(0.0), False, False),  # released: the run ended and wrote its end
    (_lease(1000.0), True, False),  # renewed, its process runs
    (_lease(1000.0), None, False),  # renewed, on another machine
    (_lease(1000.0), False, True),  # its process is gone from this machine (kill -9)
    (_lease(50.0), None, True),  # not renewed past its expiry (its machine stopped)
])
def test_a_run_whose_holder_is_gone_is_said_so(tmp_path: Path, lease: bytes | None, alive: bool | None,
                                              gone: bool) -> None:
    store = FileStorage(f"file://{tmp_path}", tmp_path)
    if lease is not None:
        store.write_bytes(LEASE_KEY, lease)
    holder = gone_holder(store, 100.0, lambda host, pid: alive)
    assert (holder is not None) == gone
    if holder is not None:
        line = gone_message(holder)
        assert "pid 4242 on box" in line and "run the same `genfab run` again" in line
        doc = {"kind": "DatasetJob", "metadata": {"name": "x"}, "executor": "local",
               "status": {"phase": "Running", "progress": "1/4", "currentStage": "segment"}}
        first = status_lines(StatusDocument.model_validate(doc), None, "file://o", line)[0]
        assert first.startswith("DatasetJob/x: Stopped: ") and "Running" not in first


def test_lease_doc_fields_are_what_the_table_writes() -> None:
    assert set(json.loads(_lease(1.0))) == set(LeaseDoc.__dataclass_fields__)


@pytest.mark.parametrize(("why", "code"), [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129), ("", 130),
                                           ("odd", 130)])
def test_a_stopped_shard_exits_with_the_shells_code_for_its_signal(why: str, code: int) -> None:
    assert interrupted_exit(why) == code
    if why.startswith("SIG"):
        assert code == 128 + signal.Signals[why]
