"""file:// storage against a tenant's own folder (issue: a shared cluster, attacked a third time): a
FIFO, a device or a socket is refused at once and never waited on; a symbolic link leads nowhere
outside the folders the storage is confined to, for reads, listings, sizes, writes and deletes; readers
of untrusted objects read no more than their bound."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from genfab.contract.names import report_key
from genfab.inventory import ShardReport, read_reports, write_report
from genfab.inventory.curated import CuratedSetError, read_manifest
from genfab.inventory.model_identity import ModelLocationError, storage_entries
from genfab.storage import Marker, StorageError, StorageTooLarge, open_storage, read_marker, write_marker
from genfab.storage.local import OUTSIDE, FileStorage

HASH = "h" * 64


def finishes(fn: Callable[[], Any], seconds: float = 5.0) -> Any:
    """Run `fn` in a thread; fail (instead of hanging the suite) when it has not returned in time."""
    box: dict[str, Any] = {}

    def go() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc
    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds}s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture
def tenants(tmp_path: Path) -> tuple[Path, Path, FileStorage]:
    """team-a's folder, team-b's folder beside it, and team-a's storage confined to its own."""
    a, b = tmp_path / "team-a", tmp_path / "team-b"
    a.mkdir()
    b.mkdir()
    (b / "secret.json").write_text('{"samples": []}')
    return a, b, FileStorage(f"file://{a}", a, confine=[a])


@pytest.mark.parametrize("make", ["fifo", "socket", "device"])
def test_a_special_file_is_refused_at_once(tmp_path: Path, make: str) -> None:
    store = open_storage(f"file://{tmp_path}")
    target = tmp_path / "m.json"
    if make == "fifo":
        os.mkfifo(target)
    elif make == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(target))
    else:
        target.symlink_to("/dev/zero")
    expected = {"fifo": "it is a FIFO", "socket": "", "device": "it is a character device"}[make]
    for read in (lambda: store.read_bytes("m.json"), lambda: store.read_at_most("m.json", 100),
                 lambda: store.open_read("m.json").read()):
        with pytest.raises(StorageError, match=f"cannot read .*m.json: {expected}"):
            finishes(read)
    assert store.size("m.json") is None
    assert [o.key for o in store.list()] == []  # no object: as in a bucket's listing


def test_reports_markers_and_manifests_never_wait_on_a_fifo(tmp_path: Path) -> None:
    run = open_storage(f"file://{tmp_path}")
    write_report(run, ShardReport("segment", HASH, 0, 2, state="succeeded", succeeded=["a"]))
    fifo = tmp_path / report_key("segment", HASH, 1)
    os.mkfifo(fifo)
    reports = finishes(lambda: read_reports(run, "segment", HASH, 2))
    assert list(reports) == [0]  # the FIFO is no report
    (tmp_path / "s").mkdir()
    os.mkfifo(tmp_path / "s" / "_SUCCESS.json")
    with pytest.raises(StorageError, match="a FIFO"):
        finishes(lambda: read_marker(run, "s"))
    os.mkfifo(tmp_path / "metadata.json")
    with pytest.raises(CuratedSetError, match=r"input\.manifest .*cannot be read .*a FIFO"):
        finishes(lambda: read_manifest(run, "metadata.json"))


def test_reports_are_bounded_in_count_index_and_size(tmp_path: Path) -> None:
    """H2: a folder of reports a tenant filled costs one listing: indexes at or above the shard count are
    not read, a report claiming another count is corrupt, and none is read past 16 MiB."""
    run = open_storage(f"file://{tmp_path}")
    for index in range(2):
        write_report(run, ShardReport("segment", HASH, index, 2, state="succeeded", succeeded=[f"s{index}"]))
    for index in range(2, 50):
        run.write_bytes(report_key("segment", HASH, index), b"{}")
    reports = read_reports(run, "segment", HASH, 2)
    assert sorted(reports) == [0, 1] and not any(r.corrupt for r in reports.values())
    write_report(run, ShardReport("segment", HASH, 1, 9, state="succeeded", succeeded=["x"]))
    assert read_reports(run, "segment", HASH, 2)[1].corrupt
    with (tmp_path / report_key("segment", HASH, 0)).open("r+b") as fh:
        fh.truncate(600 << 20)  # sparse: 600 MiB that costs no disk
    huge = read_reports(run, "segment", HASH, 2)[0]
    assert huge.corrupt and "larger than 16 MiB" in huge.message


def test_read_at_most_reads_no_more_than_its_bound(tmp_path: Path) -> None:
    (tmp_path / "big.json").write_bytes(b"x" * 1000)
    store = open_storage(f"file://{tmp_path}")
    assert store.read_at_most("big.json", 1000) == b"x" * 1000
    with pytest.raises(StorageTooLarge, match=r"big\.json: larger than 999 bytes"):
        store.read_at_most("big.json", 999)


@pytest.mark.parametrize("exists", [True, False])
def test_a_link_out_of_the_folder_reads_nothing_and_says_the_same_either_way(
        tenants: tuple[Path, Path, FileStorage], exists: bool) -> None:
    """M2: a manifest through a link must not tell whether a file outside exists."""
    a, b, store = tenants
    (a / "m.json").symlink_to(b / ("secret.json" if exists else "nothing.json"))
    with pytest.raises(StorageError) as info:
        store.read_bytes("m.json")
    assert str(info.value) == f"file://{a}/m.json: {OUTSIDE}"
    with pytest.raises(StorageError, match="leads outside"):
        store.size("m.json")
    assert [o.key for o in store.list()] == []


def test_a_linked_folder_is_neither_listed_nor_written(tenants: tuple[Path, Path, FileStorage]) -> None:
    a, b, store = tenants
    (a / "in").symlink_to(b)
    (a / "own.png").write_bytes(b"png")
    linked = FileStorage(f"file://{a}/in", a / "in", confine=[a])
    with pytest.raises(StorageError, match="leads outside"):
        list(linked.list())
    with pytest.raises(StorageError, match="leads outside"):
        store.write_bytes("in/batch_summary.json", b"{}")
    with pytest.raises(StorageError, match="leads outside"):
        store.delete_keys(["in/secret.json"])
    assert sorted(p.name for p in b.iterdir()) == ["secret.json"]  # nothing written or deleted there
    assert [o.key for o in store.list()] == ["own.png"]  # the link is not entered


def test_a_write_to_a_link_out_of_the_folder_is_refused(tenants: tuple[Path, Path, FileStorage]) -> None:
    a, b, store = tenants
    (a / "batch_summary.json").symlink_to(b / "secret.json")
    with pytest.raises(StorageError, match="leads outside"):
        store.write_bytes("batch_summary.json", b'{"ok": 1}')
    assert (b / "secret.json").read_text() == '{"samples": []}'
    # Were the link put there after the check, the rename replaces the link itself, never its target.
    inside = a / "inside.json"
    inside.write_text("old")
    store.write_bytes("inside.json", b"new")
    assert inside.read_bytes() == b"new"


def test_links_inside_the_folder_still_work(tenants: tuple[Path, Path, FileStorage]) -> None:
    a, _, store = tenants
    (a / "real").mkdir()
    (a / "real" / "x.json").write_text("{}")
    (a / "alias.json").symlink_to(a / "real" / "x.json")
    assert store.read_bytes("alias.json") == b"{}"
    assert {o.key for o in store.list()} == {"alias.json", "real/x.json"}


def test_unconfined_storage_follows_links_as_before(tmp_path: Path) -> None:
    """On a laptop (`genfab run`) nothing is confined: a link to a dataset elsewhere is read."""
    (tmp_path / "elsewhere.json").write_text("{}")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "m.json").symlink_to(tmp_path / "elsewhere.json")
    assert open_storage(f"file://{tmp_path}/root").read_bytes("m.json") == b"{}"


def test_stage_pods_are_confined_by_their_environment(tenants: tuple[Path, Path, FileStorage],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, _ = tenants
    (a / "m.json").symlink_to(b / "secret.json")
    monkeypatch.setenv("GENFAB_FILE_ROOTS", json.dumps([str(a)]))
    with pytest.raises(StorageError, match="leads outside"):
        open_storage(f"file://{a}").read_bytes("m.json")


def test_a_marker_naming_a_path_out_of_its_stage_is_corrupt(tmp_path: Path) -> None:
    """L6: it counted as a StorageError (the reconcile failed) instead of no marker."""
    run = open_storage(f"file://{tmp_path}")
    write_marker(run, "s", Marker(HASH, {"../x": "0" * 64}))
    assert read_marker(run, "s") is None
    write_marker(run, "t", Marker(HASH, {"out.png": "0" * 64}, sizes={"/etc/passwd": 1}))
    assert read_marker(run, "t") is None


class Counting:
    """A storage that counts what is read (delegating everything else)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.reads = inner, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read_at_most(self, key: str, limit: int, what: str = "") -> bytes:
        self.reads += 1
        return bytes(self.inner.read_at_most(key, limit, what))


def test_model_folders_are_bounded_and_unchanged_files_are_not_read_again(tmp_path: Path) -> None:
    """M1: a folder of 1,500 small files is not a model (bounded reads); a real one listed again reads
    only the files that changed."""
    model = tmp_path / "org" / "model"
    model.mkdir(parents=True)
    for name in ("config.json", "model_index.json", "tokenizer.json"):
        (model / name).write_text(name)
    store = Counting(open_storage(f"file://{tmp_path}"))
    first = storage_entries(store, "org/model/")  # type: ignore[arg-type]
    assert store.reads == 3
    again = storage_entries(store, "org/model/", first)  # type: ignore[arg-type]
    assert again == first and store.reads == 3
    time.sleep(0.01)
    (model / "config.json").write_text("changed")
    changed = storage_entries(store, "org/model/", first)  # type: ignore[arg-type]
    assert store.reads == 4 and changed["config.json"] != first["config.json"]
    flood = tmp_path / "org" / "flood"
    flood.mkdir()
    for i in range(300):
        (flood / f"f{i:04d}.json").write_text("x")
    with pytest.raises(ModelLocationError, match="more than 256 small files"):
        storage_entries(store, "org/flood/")  # type: ignore[arg-type]
    assert store.reads == 4  # refused from its listing: not one of its files read


def test_a_shared_model_folder_linking_out_of_the_namespace_is_unavailable(
        tenants: tuple[Path, Path, FileStorage], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Stage Pods read a `file://` model location in place: a model folder (or a file in it) that is a
    link to another namespace's folder is not loaded, as the operator's own reads are refused."""
    from genfab.stages.models.location import ModelUnavailable, resolve_model

    a, b, _ = tenants
    (b / "org" / "m").mkdir(parents=True)
    (b / "org" / "m" / "config.json").write_text("{}")
    (a / "models" / "org").mkdir(parents=True)
    (a / "models" / "org" / "m").symlink_to(b / "org" / "m")
    (a / "models" / "org" / "own").mkdir()
    (a / "models" / "org" / "own" / "config.json").write_text("{}")
    (a / "models" / "org" / "own" / "weights.bin").symlink_to(b / "org" / "m" / "config.json")
    env = {"GENFAB_MODELS": f"file://{a}/models"}
    monkeypatch.setenv("GENFAB_FILE_ROOTS", json.dumps([str(a)]))
    for model in ("org/m", "org/own"):
        with pytest.raises(ModelUnavailable, match="leads outside the folders"):
            resolve_model(model, tmp_path / "cache", env)
    (a / "models" / "org" / "own" / "weights.bin").unlink()
    assert resolve_model("org/own", tmp_path / "cache", env) == a / "models" / "org" / "own"
    monkeypatch.delenv("GENFAB_FILE_ROOTS")  # a laptop: not confined
    assert resolve_model("org/m", tmp_path / "cache", env) == a / "models" / "org" / "m"


def test_a_listing_walks_no_more_files_than_its_bound(tmp_path: Path) -> None:
    """A sorted listing walks the whole folder before it yields: a folder of very many files is stopped
    while it is walked, not after."""
    from genfab.storage import StorageLimit

    for i in range(50):
        (tmp_path / f"f{i:03d}").write_text("x")
    store = FileStorage(f"file://{tmp_path}", tmp_path, confine=[tmp_path], max_listed=20)
    with pytest.raises(StorageLimit, match="lists more than 20 objects"):
        next(iter(store.list()))
    assert len(list(FileStorage(f"file://{tmp_path}", tmp_path, max_listed=50).list())) == 50
