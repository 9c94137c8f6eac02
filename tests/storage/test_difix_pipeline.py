"""DatasetJob `difix` end to end through `genfab run` on the bundled procedural source: the lab's difix exact
layout, meta.json, drop reasons, the leak-free split, data.json in each path mode, byte-identical
reruns and the GitOps re-run counts, on file:// and on S3 (moto: the source is uploaded there too)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from genfab.stages.difix.ids import REQUIRED_META
from genfab.storage import Storage, open_storage
from tests.helpers import genfab_run
from tests.made_once import CompletedRun
from tests.storage.difix_sources import SOURCE, hi4d_source, job
from tests.storage.ledger import status

SAMPLE_ID = re.compile(r"^proc_pair0[01]_(dance|hug|walk)__tcam(4|16|28|40)__rccam(4|16|28|40)__tf\d{6}__rf\d{6}$")
DROPS = {"masks_below_threshold": 4, "unreadable": 3, "missing_render": 1, "skipped_frame": 4}
"""What the bundled source's deliberate flaws give with minMaskFraction 0.01 (see procedural.py)."""
CANDIDATES = 3 * 4 * 6




def source_uri(uri: str, env: dict[str, str]) -> str:
    """The bundled source where the run's output is: the folder itself, or uploaded next to the output."""
    if not env:
        return f"file://{SOURCE}"
    root = f"{uri.rstrip('/')}-source"
    from genfab.storage import S3Settings

    storage = open_storage(root, S3Settings.from_env(env))
    storage.write_many((str(p.relative_to(SOURCE)), p.read_bytes()) for p in sorted(SOURCE.rglob("*")) if p.is_file())
    return root


def keys(run: Storage, prefix: str) -> list[str]:
    return sorted(o.key for o in run.list(prefix))


def jsonl(run: Storage, key: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run.read_bytes(key).decode().splitlines()]


def summary(run: Storage) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in json.loads(run.read_bytes("_genfab/summary.json"))["stages"]}


def test_difix_run_writes_seed_002s_layout(tmp_path: Path,
                                           target: tuple[str, dict[str, str], Storage]) -> None:
    uri, env, run = target
    result = genfab_run(tmp_path, job(uri, source_uri(uri, env), paths="prefix" if env else "absolute"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(run)["phase"] == "Succeeded"
    # samples/<sample_id>/ holds exactly the seed's four files
    sample_keys = keys(run, "samples/")
    folders: dict[str, set[str]] = {}
    for key in sample_keys:
        _, sid, name = key.split("/")
        folders.setdefault(sid, set()).add(name)
    assert set(map(frozenset, folders.values())) == {frozenset({"image.png", "target_image.jpg", "ref_image.jpg",
                                                                "meta.json"})}
    assert all(SAMPLE_ID.match(sid) for sid in folders), sorted(folders)[:3]
    assert len(folders) == CANDIDATES - sum(DROPS.values())
    # meta.json: the seed's keys in its order, then provenance; the files are what the names say
    sid = "proc_pair00_dance__tcam16__rccam28__tf000001__rf000001"
    meta = json.loads(run.read_bytes(f"samples/{sid}/meta.json"))
    assert list(meta) == [*REQUIRED_META, "provenance", "quality"]
    assert meta | {"provenance": None, "quality": None} == {
        "sample_id": sid, "dataset": "generic", "scene_name": "proc_pair00_dance", "group_id": "pair00",
        "target_cam_id": 16, "reference_cam_id": 28, "target_fname": "000001", "reference_fname": "000001",
        "image_path": f"samples/{sid}/image.png", "target_image_path": f"samples/{sid}/target_image.jpg",
        "ref_image_path": f"samples/{sid}/ref_image.jpg", "provenance": None, "quality": None}
    assert meta["provenance"]["render"] == "pair00_dance/renders/16/000001.png"
    assert set(meta["quality"]) == {"renderPsnr", "renderSsim", "renderDark", "refAngleDeg"}  # its triplet's figures
    assert run.read_bytes(meta["target_image_path"]) == (SOURCE / "pair00_dance/images/16/000001.jpg").read_bytes()
    assert run.read_bytes(meta["ref_image_path"]) == (SOURCE / "pair00_dance/images/28/000001.jpg").read_bytes()
    assert run.read_bytes(meta["image_path"]) == (SOURCE / "pair00_dance/renders/16/000001.png").read_bytes()
    # drops: one row each, with the reason; the job went on
    rows = list(csv.DictReader(io.StringIO(run.read_bytes("meta/dropped_samples.csv").decode())))
    assert Counter(r["reason"] for r in rows) == DROPS
    unreadable = {r["sample_id"] for r in rows if r["reason"] == "unreadable"}
    assert all("hug" in s and "__tf000003__" in s and "16" in s for s in unreadable)
    assert {r["target_fname"] for r in rows if r["reason"] == "skipped_frame"} == {"000005"}
    # manifests and the leak-free split
    everything = jsonl(run, "manifests/all_samples.jsonl")
    assert [m["sample_id"] for m in everything] == sorted(folders)
    train, test = jsonl(run, "manifests/split_train.jsonl"), jsonl(run, "manifests/split_test.jsonl")
    assert sorted(m["sample_id"] for m in train + test) == sorted(folders)
    assert not {m["group_id"] for m in train} & {m["group_id"] for m in test}
    split = json.loads(run.read_bytes("manifests/split_summary.json"))
    assert split["leakage_check"] == {"train_test_group_intersection": [], "ok": True}
    assert split["groups"] == {"train": ["pair00"], "test": ["pair01"]}  # 41/60 is the closest to 0.6
    assert split["counts"] == {"train": len(train), "test": len(test), "all": len(folders),
                               "quality_dropped": 0}  # the default bounds keep every triplet of these scenes
    # difix/data.json: train and test match the manifests; every path opens
    data = json.loads(run.read_bytes("difix/data.json"))
    assert set(data) == {"train", "test"}
    assert sorted(data["train"]) == sorted(m["sample_id"] for m in train)
    assert sorted(data["test"]) == sorted(m["sample_id"] for m in test)
    for entry in [*data["train"].values(), *data["test"].values()]:
        assert set(entry) == {"image", "target_image", "ref_image", "prompt"}
        assert entry["prompt"] == "remove degradation"
        for field in ("image", "target_image", "ref_image"):
            if env:  # prefix: where training Pods mount the experiment
                assert entry[field].startswith("/data/samples/")
                assert run.exists(entry[field].removeprefix("/data/"))
            else:
                assert Path(entry[field]).is_absolute() and Path(entry[field]).is_file()
    # meta/: global settings only; coverage per dataset, scene and group
    config = yaml.safe_load(run.read_bytes("meta/generation_config.yaml"))
    assert "scenes" not in config["sources"][0] and config["split"] == {"seed": 42, "trainRatio": 0.6}
    stats = json.loads(run.read_bytes("meta/generation_stats.json"))
    assert stats["total"]["samples"] == len(folders) and stats["total"]["dropped"] == sum(DROPS.values())
    assert set(stats["scenes"]) == {"proc_pair00_dance", "proc_pair00_hug", "proc_pair01_walk"}
    assert stats["groups"]["pair01"]["test"] == stats["groups"]["pair01"]["samples"] == 19


def test_the_export_is_byte_identical_and_gitops_reruns_only_what_changed(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    spec = job(f"file://{first}", f"file://{SOURCE}", paths="relative",
               fields={"scenes": ["pair00_dance", "proc_pair01_walk"]})
    assert genfab_run(tmp_path, spec).returncode == 0
    # adding a scene exports only it; the split and the adapter see the new set
    spec["spec"]["difix"]["sources"][0]["scenes"].append("pair00_hug")
    result = genfab_run(tmp_path, spec)
    assert result.returncode == 0, result.stdout + result.stderr
    run = open_storage(f"file://{first}")
    counts = summary(run)
    assert (counts["export"]["reused"], counts["export"]["succeeded"]) == (2, 3)
    assert counts["split"]["reused"] == 0 and counts["adapter"]["reused"] == 0
    assert len(jsonl(run, "manifests/all_samples.jsonl")) == CANDIDATES - sum(DROPS.values())
    # the same spec and sources from scratch: byte-identical files
    spec["spec"]["output"] = f"file://{second}"
    assert genfab_run(tmp_path, spec).returncode == 0
    produced = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file() and "_genfab" not in p.parts)
    assert produced == sorted(p.relative_to(second) for p in second.rglob("*")
                              if p.is_file() and "_genfab" not in p.parts)
    assert len(produced) > 4 * 60
    assert all((first / p).read_bytes() == (second / p).read_bytes() for p in produced)
    # a new split seed re-runs only split and adapter
    spec["spec"]["difix"]["split"]["seed"] = 7
    assert genfab_run(tmp_path, spec).returncode == 0
    counts = summary(open_storage(f"file://{second}"))
    assert counts["export"]["reused"] == 3 and counts["split"]["reused"] == 0
    assert json.loads((second / "manifests/split_summary.json").read_text())["seed"] == 7


def test_fixed_reference_camera_with_a_frame_offset(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = job(f"file://{out}", f"file://{SOURCE}", referenceView={"strategy": "fixed-camera", "referenceCamId": 4,
                                                                   "frameOffset": -1},
               fields={"scenes": ["pair00_dance"], "minMaskFraction": 0.0})
    result = genfab_run(tmp_path, spec)
    assert result.returncode == 0, result.stdout + result.stderr
    ids = sorted(p.name for p in (out / "samples").iterdir())
    # targets: cameras 16, 28, 40 (4 is the reference) x frames 1-5 (frame 0 has no frame -1)
    assert len(ids) == 3 * 5
    assert all("__rccam4__" in i and int(i[-6:]) == int(i.split("__tf")[1][:6]) - 1 for i in ids)
    rows = list(csv.DictReader((out / "meta/dropped_samples.csv").open()))
    assert {(r["reason"], r["target_fname"], r["reference_fname"]) for r in rows} == {
        ("missing_reference", "000000", "-1")}
    meta = json.loads((out / "samples" / ids[0] / "meta.json").read_text())
    assert (meta["reference_cam_id"], meta["target_fname"], meta["reference_fname"]) == (4, "000001", "000000")


def test_a_source_without_scenes_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = genfab_run(tmp_path, job(f"file://{tmp_path}/out", f"file://{empty}"))
    assert result.returncode == 1
    assert "sources[proc]: no generic scene under" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("scenes", [["nope"]])
def test_an_unknown_scene_is_named(tmp_path: Path, scenes: list[str]) -> None:
    result = genfab_run(tmp_path, job(f"file://{tmp_path}/out", f"file://{SOURCE}", fields={"scenes": scenes}))
    assert result.returncode == 1
    assert "sources[proc].scenes: no scene nope" in result.stdout + result.stderr




def test_hi4d_layout_with_renders_from_a_folder(tmp_path: Path) -> None:
    root, renders = hi4d_source(tmp_path)
    out = tmp_path / "out"
    spec = job(f"file://{out}", f"file://{root}", fields={"name": "hi4d", "dataset": "hi4d",
                                                          "rendersUri": f"file://{renders}", "groupBy": None,
                                                          "groupPattern": None, "targetCameras": [16, 40]})
    spec["spec"]["difix"]["sources"][0] = {k: v for k, v in spec["spec"]["difix"]["sources"][0].items()
                                           if v is not None}
    result = genfab_run(tmp_path, spec)
    assert result.returncode == 0, result.stdout + result.stderr
    ids = sorted(p.name for p in (out / "samples").iterdir())
    assert len(ids) == 2 * 5  # cameras 16 and 40, frames 0-4 (frame 5: nobody in view)
    assert ids[0] == "hi4d_pair00_dance__tcam16__rccam28__tf000000__rf000000"  # the seed's pattern
    meta = json.loads((out / "samples" / ids[0] / "meta.json").read_text())
    assert (meta["dataset"], meta["scene_name"], meta["group_id"]) == ("hi4d", "hi4d_pair00_dance", "pair00")
    assert meta["provenance"]["render"] == "rendersUri:hi4d_pair00_dance/16/000000.png"
    # one group only: everything is on one side, and the split says so
    split = json.loads((out / "manifests/split_summary.json").read_text())
    assert split["counts"]["all"] == 10 and split["leakage_check"]["ok"]


def test_the_local_example_makes_the_docs_gallery(difix_local: tuple[Path, CompletedRun]) -> None:
    """`examples/datasetjob-difix-local.yaml` on a CPU: its triplets are what the difix page shows."""
    from scripts.gallery import DIFIX_GALLERY, difix_sheet, stale

    folder, result = difix_local  # the session's one run of the example
    assert result.returncode == 0, result.stdout + result.stderr
    assert stale(difix_sheet(folder / "genfab-runs" / "difix-procedural"), DIFIX_GALLERY, "difix") is None


def test_a_quality_bound_leaves_triplets_out_with_their_reason_and_widening_it_exports_nothing_again(
        tmp_path: Path) -> None:
    """Each triplet's figures are in its meta.json and the summary; a `renderPsnr` bound leaves the triplets
    above it out of the split's manifests and data.json alike, each in meta/dropped_samples.csv with
    `QualityOutOfRange`, and generation_config.yaml records the bound; lifting it runs the split and the
    adapter again (the export reused) and brings them back."""
    out = tmp_path / "out"
    spec = job(f"file://{out}", f"file://{SOURCE}", paths="relative")
    assert genfab_run(tmp_path, spec).returncode == 0
    run = open_storage(f"file://{out}")
    metas = [json.loads(run.read_bytes(k)) for k in keys(run, "samples/") if k.endswith("/meta.json")]
    psnr = {m["sample_id"]: m["quality"]["renderPsnr"] for m in metas}
    assert all(set(m["quality"]) == {"renderPsnr", "renderSsim", "renderDark", "refAngleDeg"} for m in metas)
    assert summary(run)["export"]["figures"]["renderPsnr"]["count"] == len(metas)
    bound = sorted(psnr.values())[len(psnr) // 2]  # about half the triplets above it
    above = {sid for sid, v in psnr.items() if v > bound}
    spec["spec"]["difix"]["quality"] = {"renderPsnr": {"max": bound}}
    assert genfab_run(tmp_path, spec).returncode == 0
    counts = summary(run)
    assert (counts["export"]["reused"], counts["split"]["reused"], counts["adapter"]["reused"]) == (3, 0, 0)
    data = json.loads(run.read_bytes("difix/data.json"))
    assert not above & (set(data["train"]) | set(data["test"])) and len(data["train"]) + len(data["test"]) == len(
        psnr) - len(above)
    for side in ("train", "test"):  # the manifests and data.json agree, triplet for triplet
        lines = run.read_bytes(f"manifests/split_{side}.jsonl").splitlines()
        listed = [json.loads(line)["sample_id"] for line in lines]
        assert sorted(listed) == sorted(data[side])
    split = json.loads(run.read_bytes("manifests/split_summary.json"))
    assert (split["counts"]["all"], split["counts"]["quality_dropped"]) == (len(psnr) - len(above), len(above))
    applied = yaml.safe_load(run.read_bytes("meta/generation_config.yaml"))["quality"]
    assert applied["renderPsnr"] == {"max": bound} and applied["renderDark"] == {"max": 0.95}  # a default too
    rows = [r for r in csv.DictReader(io.StringIO(run.read_bytes("meta/dropped_samples.csv").decode()))
            if r["reason"] == "QualityOutOfRange"]
    assert {r["sample_id"] for r in rows} == above
    assert all(r["detail"].startswith("renderPsnr ") and r["detail"].endswith(f"above max {bound:g}") for r in rows)
    spec["spec"]["difix"]["quality"] = {}
    assert genfab_run(tmp_path, spec).returncode == 0
    data = json.loads(run.read_bytes("difix/data.json"))
    assert len(data["train"]) + len(data["test"]) == len(psnr) and summary(run)["export"]["reused"] == 3


def test_a_bad_frame_drops_only_the_triplets_that_use_it(tmp_path: Path) -> None:
    """A 0-byte, a truncated and an over-bound target frame (the bound lowered to 64x48 by
    GENFAB_MAX_IMAGE_PIXELS, the frame 128x96): each drops the one triplet whose target it is, with its
    own reason and a one-line message; every other triplet of the scene is exported, the run succeeds."""
    import shutil

    from PIL import Image

    source = tmp_path / "source"
    shutil.copytree(SOURCE / "pair00_dance", source / "pair00_dance")
    images = source / "pair00_dance" / "images"
    (images / "16" / "000001.jpg").write_bytes(b"")
    truncated = images / "28" / "000002.jpg"
    truncated.write_bytes(truncated.read_bytes()[: len(truncated.read_bytes()) // 2])
    Image.new("RGB", (128, 96), (90, 120, 30)).save(images / "40" / "000003.jpg")
    out = tmp_path / "out"
    spec = job(f"file://{out}", f"file://{source}", referenceView={"strategy": "fixed-camera", "referenceCamId": 4},
               fields={"minMaskFraction": 0.0})
    result = genfab_run(tmp_path, spec, env={"GENFAB_MAX_IMAGE_PIXELS": str(64 * 48)})
    assert result.returncode == 0, result.stdout + result.stderr
    rows = list(csv.DictReader((out / "meta/dropped_samples.csv").open()))
    bad = {(r["target_cam_id"], r["target_fname"]): (r["reason"], r["detail"]) for r in rows
           if r["reason"] not in ("skipped_frame", "missing_render")}
    assert {k: v[0] for k, v in bad.items()} == {("16", "000001"): "empty", ("28", "000002"): "unreadable",
                                                  ("40", "000003"): "too_large"}, rows
    assert all("\n" not in detail and "OpenCV" not in detail for _, detail in bad.values())
    assert "128x96 = 12,288 pixels; at most 3,072" in bad[("40", "000003")][1]
    frames = {p.name for p in (images / "16").iterdir()}
    kept = sorted(p.name for p in (out / "samples").iterdir())
    assert len(kept) == 3 * len(frames) - 3 - sum(r["reason"] in ("skipped_frame", "missing_render") for r in rows)
    assert status(open_storage(f"file://{out}"))["phase"] == "Succeeded"
