"""The sample manifest: a stage's sample list written once, read by slices, checked when read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genfab.contract import StageConfig
from genfab.contract.config import ResourceRef
from genfab.contract.names import ENV_SAMPLE_MANIFEST
from genfab.inventory.manifest import (
    InvalidManifest,
    manifest_prefix,
    part_size,
    read_manifest,
    read_slice,
    write_manifest,
)
from genfab.storage.local import FileStorage

pytestmark = pytest.mark.unit


def samples(n: int) -> list[tuple[str, str | None]]:
    return [(f"p{i:07d}", f"p{i:07d}.png") for i in range(n)]


@pytest.mark.parametrize(("count", "size"), [(0, 10_000), (1, 10_000), (10_000_000, 10_000),
                                              (20_000_000, 20_000)])
def test_part_size_keeps_the_parts_at_most_a_thousand(count: int, size: int) -> None:
    assert part_size(count) == size and -(-count // size) <= 1000


def test_slices_read_only_the_parts_they_fall_in(tmp_path: Path) -> None:
    run = FileStorage(f"file://{tmp_path}", tmp_path)
    written = write_manifest(run, "segment", "h" * 64, samples(25_000))
    assert [p.count for p in written.parts] == [10_000, 10_000, 5_000]
    manifest = read_manifest(run, "segment", "h" * 64)
    assert manifest == written
    assert read_slice(run, manifest, 9_998, 10_002) == samples(25_000)[9_998:10_002]
    assert read_slice(run, manifest, 0, 25_000) == samples(25_000)
    assert read_slice(run, manifest, 25_000, 25_000) == []
    (tmp_path / manifest_prefix("segment", "h" * 64) / "part-00000.json").unlink()
    assert read_slice(run, manifest, 20_000, 20_010) == samples(25_000)[20_000:20_010]  # part 0 never read


def test_an_empty_list_is_a_manifest_of_no_parts(tmp_path: Path) -> None:
    run = FileStorage(f"file://{tmp_path}", tmp_path)
    write_manifest(run, "segment", "h" * 64, [])
    manifest = read_manifest(run, "segment", "h" * 64)
    assert manifest.count == 0 and read_slice(run, manifest, 0, 0) == []


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(count=5), "do not add up"),
    (lambda d: d.update(stage="other"), "is of stage 'other'"),
    (lambda d: d["parts"][0].update(key="../x.json"), "is not one genfab wrote"),
    (lambda d: d.update(extra=1), "is not one genfab wrote"),
])
def test_a_header_that_does_not_say_what_genfab_wrote_is_refused(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    run = FileStorage(f"file://{tmp_path}", tmp_path)
    write_manifest(run, "segment", "h" * 64, samples(3))
    path = tmp_path / manifest_prefix("segment", "h" * 64) / "manifest.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidManifest, match=message):
        read_manifest(run, "segment", "h" * 64)


def test_a_missing_manifest_says_so(tmp_path: Path) -> None:
    with pytest.raises(InvalidManifest, match="does not exist"):
        read_manifest(FileStorage(f"file://{tmp_path}", tmp_path), "segment", "h" * 64)


@pytest.mark.parametrize("rows", [
    [["../etc", None], ["b", None], ["c", None]],          # an id that is a path out
    [["a", "/etc/passwd"], ["b", None], ["c", None]],      # an absolute source
    [["a", "x/../../y"], ["b", None], ["c", None]],        # a source climbing out
    [["b", None], ["a", None], ["c", None]],               # not sorted
    [["a", None], ["b", None]],                            # fewer than the header says
    {"a": 1},                                              # not a list
])
def test_parts_are_checked_as_they_are_read(tmp_path: Path, rows: object) -> None:
    run = FileStorage(f"file://{tmp_path}", tmp_path)
    manifest = write_manifest(run, "segment", "h" * 64, [("a", None), ("b", None), ("c", None)])
    (tmp_path / manifest_prefix("segment", "h" * 64) / "part-00000.json").write_text(json.dumps(rows))
    with pytest.raises(InvalidManifest):
        read_slice(run, manifest, 0, 3)


def test_a_shard_reads_its_slice_from_the_manifest_when_the_executor_says_so(tmp_path: Path) -> None:
    """`StageContext.samples` with `GENFAB_SAMPLE_MANIFEST`: the shard's slice from the manifest, without
    listing the input (which is not even there); without it, the input is listed as before."""
    from genfab.stages.runtime.context import StageContext

    cfg = StageConfig(resource=ResourceRef(kind="DatasetJob", name="d"), pipeline="relighting", stage="segment",
                      family="cv", config_hash="h" * 64,
                      run_uri=f"file://{tmp_path}/out", output_uri=f"file://{tmp_path}/out/s1",
                      input_uris=(f"file://{tmp_path}/missing",))
    write_manifest(FileStorage(f"file://{tmp_path}/out", tmp_path / "out"), "segment", "h" * 64, samples(1000))
    ctx = StageContext(cfg, 3, 4, env={ENV_SAMPLE_MANIFEST: "1"})
    assert [s.id for s in ctx.samples] == [f"p{i:07d}" for i in range(750, 1000)]
    assert ctx.total_samples == 1000 and ctx.samples[0].source == "p0000750.png"
    with pytest.raises(Exception, match="missing: no such folder"):
        _ = StageContext(cfg, 3, 4, env={}).samples


def test_the_inventory_entry_point_writes_the_manifest_or_says_in_one_line_why_not(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from genfab.stages.runtime.inventory import main

    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(5):
        (inputs / f"img_{i}.png").write_bytes(b"png")
    cfg = StageConfig(resource=ResourceRef(kind="DatasetJob", name="d"), pipeline="relighting", stage="segment",
                      family="cv", config_hash="h" * 64, run_uri=f"file://{tmp_path}/out",
                      output_uri=f"file://{tmp_path}/out/s1", input_uris=(f"file://{inputs}",))
    (tmp_path / "stage.json").write_text(cfg.to_json())
    env = {"GENFAB_STAGE_CONFIG": str(tmp_path / "stage.json"), "GENFAB_TERMINATION_LOG": str(tmp_path / "term")}
    assert main(env) == 0
    run = FileStorage(f"file://{tmp_path}/out", tmp_path / "out")
    assert read_slice(run, read_manifest(run, "segment", "h" * 64), 0, 5)[0] == ("img_0", "img_0.png")
    assert "5 samples in 1 part(s)" in (tmp_path / "term").read_text()
    empty = cfg.model_copy(update={"input_uris": (f"file://{tmp_path}/nothing",)})
    (tmp_path / "stage.json").write_text(empty.to_json())
    assert main(env) == 42
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("genfab inventory: bad input: file://") and "nothing: no such folder" in line


def test_a_failed_inventory_jobs_own_words_become_one_printable_line() -> None:
    from genfab.operator.inventory import inventory_listing

    job = {"metadata": {"name": "r-segment-abc-inv"}, "spec": {"completions": 1},
           "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]}}
    pod = {"status": {"containerStatuses": [{"state": {"terminated": {
        "message": "bad input: no input files\n\x1b[2J\x07under s3://x"}}}]}}
    listing = inventory_listing(job, [pod], lambda: (_ for _ in ()).throw(AssertionError("not read")))
    assert listing.refused == ("cannot list samples: bad input: no input files [2Junder s3://x "
                               "(inventory job r-segment-abc-inv)")
    assert listing.count is None and not listing.waiting


NAMES = ["Screenshot 2026-11-30 at 9.41.12\u202fPM.png", "caf\u00e9\u00a0menu.png", "esc\x1b[31mred.png",
         "tab\tname.png", "bell\x07.png", "line\u2028sep.png", "\udcffnot-utf8.png"]
"""Names a file system allows (the last: a byte that is not UTF-8, as Python lists it on Linux)."""


def test_any_name_the_file_system_allows_is_listed_written_and_read_back_as_a_sample(tmp_path: Path) -> None:
    """genfab's own listing writes these names into the manifest; its reader takes them all back (it
    refused those Python does not call printable: one screenshot failed a whole stage)."""
    import os

    from genfab.inventory.samples import resolve_samples
    from genfab.storage import open_storage

    folder = tmp_path / "in"
    folder.mkdir()
    for name in NAMES:
        (folder / name).write_bytes(b"\x89PNG")
        assert os.fsencode(folder / name)  # the file system took it
    cfg = StageConfig(resource=ResourceRef(kind="DatasetJob", name="d"), pipeline="relighting", stage="segment",
                      family="cv", config_hash="h" * 64, run_uri=f"file://{tmp_path}/out",
                      output_uri=f"file://{tmp_path}/out/s1", input_uris=(f"file://{folder}",))
    listed = resolve_samples(cfg, open_storage)
    assert sorted(r.source for r in listed) == sorted(NAMES)
    run = FileStorage(f"file://{tmp_path}/out", tmp_path / "out")
    manifest = write_manifest(run, "segment", "h" * 64, [(r.id, r.source) for r in listed])
    back = read_slice(run, read_manifest(run, "segment", "h" * 64), 0, len(NAMES))
    assert back == [(r.id, r.source) for r in listed] and manifest.count == len(NAMES)
    store = open_storage(f"file://{folder}")
    assert all(store.read_bytes(source) == b"\x89PNG" for _, source in back if source)  # each still opens


def test_a_part_nested_past_parsing_is_one_line_not_a_recursion_error(tmp_path: Path) -> None:
    run = FileStorage(f"file://{tmp_path}", tmp_path)
    manifest = write_manifest(run, "segment", "h" * 64, samples(3))
    (tmp_path / manifest_prefix("segment", "h" * 64) / "part-00000.json").write_text("[" * 60_000 + "]" * 60_000)
    with pytest.raises(InvalidManifest, match="nested too deep to be a list of samples"):
        read_slice(run, manifest, 0, 3)
