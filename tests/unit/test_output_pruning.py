"""Stale outputs (`Stage.prunes_outputs`, `Sample.previous`): which samples are gone, and what a
sample made again or removed leaves behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from genfab.stages.runtime.pruning import gone_samples, remove_gone_samples
from genfab.storage import Marker, read_marker, write_marker
from genfab.storage.local import FileStorage

M = "_genfab/markers"


@pytest.mark.parametrize(("keys", "current", "gone"), [
    ([f"{M}/a/_SUCCESS.json", f"{M}/b/_SUCCESS.json"], ["a", "b"], []),
    ([f"{M}/a/_SUCCESS.json", f"{M}/b/_SUCCESS.json"], ["a"], ["b"]),
    ([f"{M}/photorealistic/index_0001/_SUCCESS.json"], [], ["photorealistic/index_0001"]),  # ids with `/`
    ([f"{M}/a/_SUCCESS.json", f"{M}/a/other.json", "elsewhere/b/_SUCCESS.json"], [], ["a"]),
])
def test_gone_samples(keys: list[str], current: list[str], gone: list[str]) -> None:
    assert gone_samples(keys, M, current) == gone


def test_removing_gone_samples_deletes_their_outputs_and_markers_only(tmp_path: Path) -> None:
    out = FileStorage(f"file://{tmp_path}", tmp_path)
    for sample in ("keep", "gone"):
        out.write_bytes(f"train/images/{sample}.png", b"img")
        out.write_bytes(f"train/labels/{sample}.txt", b"0 0.1 0.1")
        write_marker(out, f"{M}/{sample}", Marker("h", {f"train/images/{sample}.png": "x",
                                                        f"train/labels/{sample}.txt": "y"}))
    out.write_bytes("data.yaml", b"names: [mug]")  # a stage-level file no marker lists
    assert remove_gone_samples(out, M, ["keep"]) == ["gone"]
    assert sorted(o.key for o in out.list()) == [
        f"{M}/keep/_SUCCESS.json", "data.yaml", "train/images/keep.png", "train/labels/keep.txt"]
    assert read_marker(out, f"{M}/gone") is None


def test_a_sample_made_again_deletes_what_its_earlier_config_wrote_and_this_one_does_not(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from genfab.inventory import SampleRef
    from genfab.stages.runtime import Sample

    out = FileStorage(f"file://{tmp_path}", tmp_path)
    out.write_bytes("train/images/s.png", b"old")  # the earlier config put the sample in train/
    out.write_bytes("train/labels/s.txt", b"old")
    before = Marker("old", {"train/images/s.png": "x", "train/labels/s.txt": "y"})
    write_marker(out, f"{M}/s", before)
    with ThreadPoolExecutor(2) as writer:
        ctx = SimpleNamespace(output=out, writer=writer, config_hash="new", base_hash="new")
        sample = Sample(SampleRef("s"), ctx, f"{M}/s", previous=before)  # type: ignore[arg-type]
        sample.write("val/images/s.png", b"new")  # this config puts it in val/
        sample.write("val/labels/s.txt", b"new")
        sample.commit(0.0)
    assert sorted(o.key for o in out.list()) == [f"{M}/s/_SUCCESS.json", "val/images/s.png", "val/labels/s.txt"]
    marker = read_marker(out, f"{M}/s")
    assert marker is not None and marker.config_hash == "new"
