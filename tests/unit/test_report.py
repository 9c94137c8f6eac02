"""The run report's decisions (which samples are pictured, what each pipeline's section shows, the gate's
waiting views) as table tests, and the writer and the review page on a local output."""

from __future__ import annotations

import io
import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from genfab.api.summary import RunSummary
from genfab.cli.report import write_run_report
from genfab.report import report_unavailable
from genfab.report.model import Listing, Picture, Row, Section
from genfab.report.pictures import thumbnail
from genfab.report.sections import sections
from genfab.report.sections.datasets import difix, reference_object, relighting, yolo_class_counts
from genfab.report.writer import ReportWriter, pictured
from genfab.selection.review import Review, how_to_go_on, make_server
from genfab.selection.waiting import waiting_samples
from genfab.storage import open_storage


def png(colour: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (32, 24)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def listing(files: dict[str, bytes], pipeline: str, stages: dict[str, str]) -> Listing:
    summary = {"kind": "DatasetJob", "name": "x", "pipeline": pipeline, "outputUri": "file:///out",
               "stages": [{"name": n, "outputUri": f"file:///out/{p}".rstrip("/"), "phase": "Succeeded"}
                          for n, p in stages.items()]}
    return Listing({k: len(v) for k, v in files.items()}, RunSummary.model_validate(summary), None, files.get,
                   lambda keys: {k: files[k] for k in keys if k in files})


@pytest.mark.parametrize(("n", "budget", "picked"), [
    (10, 4, [0, 3, 6, 9]), (3, 5, [0, 1, 2]), (5, 1, [0]), (5, 0, []), (0, 3, []), (7, 7, list(range(7))),
])
def test_pictured_samples_are_evenly_spaced_with_the_first_and_the_last(n: int, budget: int, picked: list[int]) -> None:
    rows = tuple(Row(str(i), ()) for i in range(n))
    assert [int(r.sample) for r in pictured(rows, budget)] == picked


def test_stage_folders_come_from_the_summary() -> None:
    got = listing({}, "relighting", {"segment": "data/stage_1", "organize": "data", "root": ""})
    assert (got.stage_prefix("segment"), got.stage_prefix("organize"), got.stage_prefix("root")) == \
           ("data/stage_1/", "data/", "")
    assert got.stage_prefix("missing") is None


def test_relighting_rows_show_each_stage_and_what_is_not_made() -> None:
    meta = {"stages": {"segment": {"params": {"backend": "sam2", "maskFraction": 0.4}},
                       "albedo": {"params": {"method": "lab", "blend": 0.2}}},
            "lighting": {"method": "hardShadow", "ambient": 0.7, "lightDirection": [0.0, 1.0, 0.0]}}
    files = {"data/outputs/a_input.png": b"", "data/outputs/a_albedo.png": b"", "data/outputs/a_output.png": b"",
             "data/outputs/a_metadata.json": json.dumps(meta).encode(), "data/stage_1/a_mask.png": b"",
             "data/stage_1/b_mask.png": b"", "data/stage_1/b_foreground.png": b"", "data/stage_3/a_degraded.png": b""}
    (section,) = relighting(listing(files, "relighting", {"segment": "data/stage_1", "albedo": "data/stage_2",
                                                          "degrade": "data/stage_3", "organize": "data"}))
    (gallery,) = section.galleries  # no quality section: the summary has no figures
    a, b = gallery.rows
    assert a.pictures == (Picture("data/outputs/a_input.png"),
                          Picture("data/outputs/a_input.png", mask="data/stage_1/a_mask.png"),
                          Picture("data/outputs/a_albedo.png"), Picture("data/stage_3/a_degraded.png"),
                          Picture("data/outputs/a_output.png"))
    # b stopped after the segment stage: no input in the output yet (the foreground is not it), the mask
    # drawn over the foreground, nothing else
    assert b.pictures == (None, Picture("data/stage_1/b_foreground.png", mask="data/stage_1/b_mask.png"),
                          None, None, None)
    assert a.pictures[1] is not None and a.pictures[1].opens == "data/stage_1/a_mask.png"  # the mask's link: the mask
    assert a.pictures[0] is not None and a.pictures[0].opens == "data/outputs/a_input.png"
    assert gallery.describe is not None
    facts = dict(gallery.describe(meta))
    assert facts["mask"] == "sam2, 0.4 of the frame" and facts["albedo"] == "lab, blend 0.2"
    assert facts["lighting"] == "hardShadow" and facts["light direction"] == "(0, 1, 0)"


def test_difix_triplets_carry_their_group_and_split() -> None:
    files = {f"samples/s{i}/{name}": b"" for i in range(3) for name in ("meta.json", "image.png", "target_image.jpg")}
    files["manifests/split_train.jsonl"] = (b'{"sample_id": "s0", "group_id": "g0"}\n'
                                            b'{"sample_id": "s1", "group_id": "g0"}\n')
    files["manifests/split_test.jsonl"] = b'{"sample_id": "s2", "group_id": "g1"}\nnot json\n'
    (section,) = difix(listing(files, "difix", {"export": "", "split": ""}))  # no figures: no quality section
    (gallery,) = section.galleries
    assert [(r.sample, dict(r.facts)["split"], dict(r.facts)["group"]) for r in gallery.rows] == \
           [("s0", "train", "g0"), ("s1", "train", "g0"), ("s2", "test", "g1")]
    assert all(r.pictures[2] is None for r in gallery.rows)  # no reference image made


def test_reference_object_counts_objects_per_class_and_draws_each_label() -> None:
    root = "20260101_000000/06_yolo_dataset/"
    files = {f"{root}classes.txt": b"mug\nlid\n", f"{root}train/images/a.png": b"", f"{root}val/images/b.jpg": b"",
             f"{root}train/labels/a.txt": b"0 0.1 0.1 0.5 0.1 0.5 0.5\n1 0.2 0.2 0.3 0.2 0.3 0.3\n",
             f"{root}val/labels/b.txt": b"0 0.1 0.1 0.5 0.1 0.5 0.5\n",
             "20260101_000000/01_white_background.png": b""}
    (section,) = reference_object(listing(files, "reference-object", {"annotation": root}))  # no figures
    (table,) = section.tables
    assert table.rows == (("mug", "1", "1"), ("lid", "1", "0"))
    assert dict(section.galleries[2].rows[0].facts)["objects"] == "mug 1, lid 1"
    yolo = section.galleries[2]
    assert [r.pictures[0] for r in yolo.rows] == [
        Picture(f"{root}train/images/a.png", polygons=f"{root}train/labels/a.txt"),
        Picture(f"{root}val/images/b.jpg", polygons=f"{root}val/labels/b.txt")]
    assert section.plots[0].names == ("mug", "lid")
    assert yolo_class_counts({"x": b"2 0 0 1 0 1 1\nbad\n\n2 0 0 1 0 1 1"}) == {2: 2}


def test_a_custom_pipeline_gets_the_run_section_only() -> None:
    got = sections(listing({}, "my-pipeline", {"a": "a"}))
    assert [s.title for s in got] == ["Run"]
    assert got[0].tables[0].rows[0][:2] == ("a", "Succeeded")


@pytest.mark.parametrize(("keys", "expected"), [
    ([], []),
    (["v/i/scaffold/candidates/001_00.png", "v/i/scaffold/candidates/001_01.png"] +
     [f"v/i/scaffold/final/{g}.png" for g in ("003", "005", "007")],
     [("v/i", [("001", (0, 1), False), ("003", (), True), ("005", (), True), ("007", (), True)])]),
    (["v/i/scaffold/candidates/001_00.png"] + [f"v/i/scaffold/final/{g}.png" for g in ("001", "003", "005", "007")],
     []),  # every in-between view chosen: nothing waits
])
def test_the_gate_lists_the_views_still_to_choose(keys: list[str], expected: list[Any]) -> None:
    got = [(w.sample, [(g.view, g.candidates, g.chosen) for g in w.gaps]) for w in waiting_samples(keys)]
    assert got == expected


def test_a_thumbnail_draws_the_mask_outline_and_the_label_polygons() -> None:
    mask = io.BytesIO()
    Image.fromarray(np.pad(np.full((8, 8), 255, np.uint8), 8)).save(mask, "PNG")
    jpeg, width, height = thumbnail(png((40, 40, 200)), mask=mask.getvalue())
    pixels = np.asarray(Image.open(io.BytesIO(jpeg)))
    assert (width, height) == (32, 24) and pixels[0, 0, 2] < 100 < pixels[12, 16, 2]  # outside dimmed
    jpeg, _, _ = thumbnail(png((0, 0, 0), (64, 64)), polygons=b"0 0.2 0.2 0.8 0.2 0.8 0.8\n")
    assert np.asarray(Image.open(io.BytesIO(jpeg))).max() > 150  # an outline in the class colour


def make_relighting_output(root: Path, n: int) -> None:
    data = root / "data"
    for folder in ("outputs", "stage_1", "stage_3"):
        (data / folder).mkdir(parents=True, exist_ok=True)
    picture = png()
    for i in range(n):
        sid = f"s{i:05d}"
        for name in ("input", "albedo", "output"):
            (data / "outputs" / f"{sid}_{name}.png").write_bytes(picture)
        (data / "outputs" / f"{sid}_metadata.json").write_text(json.dumps({"lighting": {"method": "softShading"}}))
        (data / "stage_1" / f"{sid}_mask.png").write_bytes(picture)
        (data / "stage_3" / f"{sid}_degraded.png").write_bytes(picture)
    summary = {"kind": "DatasetJob", "name": "big", "pipeline": "relighting", "outputUri": root.as_uri(),
               "phase": "Succeeded", "stages": [{"name": s, "outputUri": f"{root.as_uri()}/{p}", "samples": n}
                                                for s, p in (("segment", "data/stage_1"), ("degrade", "data/stage_3"),
                                                             ("organize", "data"))]}
    (root / "_genfab").mkdir()
    (root / "_genfab/summary.json").write_text(json.dumps(summary))


def test_a_large_run_is_pictured_in_part_paged_and_listed_whole(tmp_path: Path) -> None:
    make_relighting_output(tmp_path, 240)
    (tmp_path / "data/outputs/s00000_input.png").write_bytes(b"not a picture")
    result = ReportWriter(open_storage(tmp_path.as_uri()), max_pictures=120).write()
    report = tmp_path / "_genfab/report"
    assert (result.samples, result.pictured, result.pages) == (240, 120, 3)  # 120 pictured, 50 to a page
    assert result.unreadable == 2  # the input and its mask drawing
    index = (report / "index.html").read_text()
    assert "120 of 240 samples pictured" in index and "page 1 of 3" in index and "s00000" in index
    assert index.count(">unreadable</a>") == 2 and ">not made<" not in index  # said as such, not as missing
    assert "s00239" in (report / "pairs-3.html").read_text()  # the last sample, on the last page
    assert len((report / "samples.csv").read_text().splitlines()) == 1 + 240 * 5
    elsewhere = index.replace(tmp_path.as_uri(), "")
    assert "http:" not in elsewhere and "https:" not in elsewhere and "//" not in elsewhere  # from no other host
    again = ReportWriter(open_storage(tmp_path.as_uri()), max_pictures=10).write()
    assert again.pages == 1 and not (report / "pairs-3.html").exists()  # an old page is not left behind


def test_sample_ids_are_escaped(tmp_path: Path) -> None:
    make_relighting_output(tmp_path, 1)
    for path in (tmp_path / "data").rglob("s00000*"):
        path.rename(path.with_name(path.name.replace("s00000", "<b>x")))
    ReportWriter(open_storage(tmp_path.as_uri())).write()
    index = (tmp_path / "_genfab/report/index.html").read_text()
    assert "<b>x" not in index and "&lt;b&gt;x" in index
    assert '<meta http-equiv="Content-Security-Policy" content="script-src \'none\';' in index  # and none runs


def test_no_run_there_is_one_line_and_no_report(tmp_path: Path) -> None:
    where, why = write_run_report(tmp_path.as_uri(), {})
    assert where is None and "no genfab run there" in why and "\n" not in why
    assert not (tmp_path / "_genfab").exists()


def test_a_missing_library_is_named_and_without_matplotlib_only_the_charts_are_left_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "PIL" else real(name))
    assert report_unavailable() == "the report needs Pillow (pip install 'genfab[report]')"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "matplotlib" else real(name))
    assert report_unavailable() is None
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/steps.jsonl").write_text('{"step": 1, "lr": 0.1, "loss_total": 2}\n{"step": 2, "lr": 0.1}\n')
    (tmp_path / "_genfab").mkdir()
    (tmp_path / "_genfab/summary.json").write_text(json.dumps({
        "kind": "TuningRun", "name": "t", "pipeline": "tuning-difix", "outputUri": tmp_path.as_uri(),
        "stages": [{"name": "train", "outputUri": tmp_path.as_uri()}]}))
    where, line = write_run_report(tmp_path.as_uri(), {})
    assert where is not None and line.endswith("; charts not drawn: matplotlib is not installed "
                                                "(pip install 'genfab[report]')"), line
    index = (tmp_path / "_genfab/report/index.html").read_text()
    assert "Training loss: charts not drawn: matplotlib is not installed" in index
    assert not (tmp_path / "_genfab/report/plots").exists()


def gate_output(root: Path) -> None:
    folder = root / "v/index_0000/scaffold"
    (folder / "candidates").mkdir(parents=True)
    (folder / "final").mkdir()
    for gap in ("001", "003", "005", "007"):
        for k in range(2):
            (folder / "candidates" / f"{gap}_{k:02d}.png").write_bytes(png((k * 100, 0, int(gap))))
    for view in ("000", "002", "004", "006"):
        (folder / "final" / f"{view}.png").write_bytes(png())


def test_the_review_applies_every_choice_or_none(tmp_path: Path) -> None:
    gate_output(tmp_path)
    review = Review(open_storage(tmp_path.as_uri()))
    assert [s["sample"] for s in review.state()["samples"]] == ["v/index_0000"]
    assert review.apply([["v/index_0000", "002", 0]])["error"].startswith("a choice must be [sample, view, candidate]")
    assert review.apply([])["error"] == "nothing chosen: click a candidate first"
    bad = review.apply([["v/index_0000", "001", 1], ["v/index_0000", "003", 7]])
    assert "no such candidate; there are 003_00.png, 003_01.png; nothing was copied" in bad["error"]
    assert not (tmp_path / "v/index_0000/scaffold/final/001.png").exists()
    done = review.apply([["v/index_0000", g, 1] for g in ("001", "003", "005", "007")])
    assert done["ok"] and done["complete"] == 1 and done["lines"][0].endswith("final/ is complete")
    assert review.state()["samples"] == []
    assert how_to_go_on("local", 1, 1).startswith("1 of 1 sample(s) complete: run the same `genfab run` command")
    assert "the operator" in how_to_go_on(None, 1, 2) and how_to_go_on("local", 0, 2).endswith("wait for choices")


def test_the_review_server_wants_its_token_and_its_own_name(tmp_path: Path) -> None:
    import threading

    gate_output(tmp_path)
    review = Review(open_storage(tmp_path.as_uri()))
    server = make_server(review, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def get(path: str, host: str | None = None) -> int:
        request = urllib.request.Request(base + path, headers={"Host": host} if host else {})
        try:
            with urllib.request.urlopen(request) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        token = review.token
        assert get(f"/?token={token}") == 200
        assert get("/?token=wrong") == 403 and get("/state") == 403
        assert get(f"/state?token={token}", host="attacker.example:80") == 421  # DNS rebinding
        assert get(f"/image?token={token}&key=v/index_0000/scaffold/candidates/001_01.png") == 200
        assert get(f"/image?token={token}&key=_genfab/summary.json") == 404  # only the gate's pictures
    finally:
        server.shutdown()
        server.server_close()


def test_links_out_of_a_local_output_are_not_followed_by_the_review_or_the_report(tmp_path: Path) -> None:
    """A shared volume that stage Pods write: a candidate that links to a file outside the output is
    neither served, nor copied, nor pictured; a `final/` that links outside is refused, nothing written."""
    from genfab.storage import StorageError, open_confined

    out = tmp_path / "out"
    gate_output(out)
    secret = tmp_path / "secret.png"
    secret.write_bytes(png((1, 2, 3)))
    candidates = out / "v/index_0000/scaffold/candidates"
    (candidates / "001_01.png").unlink()
    (candidates / "001_01.png").symlink_to(secret)
    store = open_confined(out.as_uri())
    with pytest.raises(StorageError, match="leads outside"):
        store.read_bytes("v/index_0000/scaffold/candidates/001_01.png")
    review = Review(store)
    (waiting,) = review.state()["samples"]
    assert "001_01.png" not in json.dumps(waiting)  # not offered
    refused = review.apply([["v/index_0000", g, 1] for g in ("001", "003", "005", "007")])
    assert "error" in refused and not (out / "v/index_0000/scaffold/final/001.png").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    final = out / "v/index_0000/scaffold/final"
    shutil.rmtree(final)
    final.symlink_to(elsewhere)
    refused = review.apply([["v/index_0000", g, 0] for g in ("001", "003", "005", "007")])
    assert "error" in refused and list(elsewhere.iterdir()) == []
    with pytest.raises(StorageError, match="leads outside"):
        store.write_bytes("v/index_0000/scaffold/final/001.png", b"x")


def test_a_worldexplorer_scene_shows_its_views_frames_render_and_metrics() -> None:
    s = "photorealistic/index_0000"
    files = {f"{s}/scaffold/final/{v:03d}.png": b"" for v in range(8) if v != 3}
    files.update({f"{s}/scaffold/candidates/003_0{k}.png": b"" for k in range(2)})
    files.update({f"{s}/scenes/img2trajvid/images/{i:04d}.png": b"" for i in range(20)})
    files[f"{s}/scenes/gaussians/preview.png"] = b""
    files[f"{s}/scenes/gaussians/gf.ply"] = b"x" * 2_500_000
    files[f"{s}/scenes/gaussians/metrics.json"] = json.dumps({
        "psnr": 27.125, "ssim": 0.8912, "lpips": 0.1, "num_gaussians": 123456, "evaluated_on": "test", "views": 4}
    ).encode()
    section = sections(listing(files, "worldexplorer", {"scaffold": "", "expansion": "", "gaussians": ""}))[0]
    views, waiting, scenes = section.galleries
    assert [p is None for p in views.rows[0].pictures] == [False, False, False, True, False, False, False, False]
    assert [r.sample for r in waiting.rows] == [f"{s} view 003"] and len(waiting.rows[0].pictures) == 2
    frames = [p.key.rsplit("/", 1)[1] for p in scenes.rows[0].pictures if p is not None]
    assert frames == ["0000.png", "0004.png", "0008.png", "0011.png", "0015.png", "0019.png", "preview.png"]
    assert dict(scenes.rows[0].facts)["PLY"] == "2.5 MB"
    (table,) = section.tables
    assert table.header == ("sample", "PSNR", "SSIM", "LPIPS", "Gaussians", "evaluated on", "PLY size")
    assert table.rows == ((s, "27.12", "0.891", "0.100", "123456", "test views (4)", "2.5 MB"),)


def test_a_vistadream_scene_says_its_psnr_is_the_input_views() -> None:
    files = {"astronaut/outpaint/input.png": b"", "astronaut/depth/depth.png": b"",
             "astronaut/render/gf.ply": b"x" * 900,
             "astronaut/gaussians/metrics.json": json.dumps({"input_view_psnr": 31.5, "splats": 4096}).encode()}
    section = sections(listing(files, "vistadream", {"outpaint": "", "depth": "", "gaussians": ""}))[0]
    (table,) = section.tables
    assert table.rows[0][:3] == ("astronaut", "31.50", "4096") and table.rows[0][-1] == "900 B"
    assert table.header[1] == "input-view PSNR"


def test_an_output_of_too_many_objects_is_one_line_not_a_listing_held_whole(tmp_path: Path) -> None:
    from genfab.report.writer import ReportError, list_output

    make_relighting_output(tmp_path, 3)
    store = open_storage(tmp_path.as_uri())
    assert len(list_output(store)) == 3 * 6 + 1
    with pytest.raises(ReportError, match=r"more than 10 objects under the output; report a run's own output"):
        list_output(store, limit=10)


def test_image_bombs_and_empty_files_are_pictured_as_unreadable_and_never_stop_the_report(tmp_path: Path) -> None:
    """A header claiming 50,000² (over Pillow's own bomb check), one claiming 12,000² (over genfab's
    100-megapixel bound, under Pillow's), a 0-byte picture: each is refused by its header, said
    unreadable, and the report is written."""
    from tests.unit.shared import png_header

    make_relighting_output(tmp_path, 4)
    (tmp_path / "data/outputs/s00001_albedo.png").write_bytes(png_header(50_000, 50_000))
    (tmp_path / "data/outputs/s00002_output.png").write_bytes(png_header(12_000, 12_000))
    (tmp_path / "data/stage_3/s00003_degraded.png").write_bytes(b"")
    result = ReportWriter(open_storage(tmp_path.as_uri())).write()
    assert result.unreadable == 3 and result.pictured == 4
    assert (tmp_path / "_genfab/report/index.html").read_text().count(">unreadable</a>") == 3


def test_the_report_decodes_a_bounded_number_of_pixels_at_once() -> None:
    import threading
    import time

    from genfab.report.pictures import PixelBudget

    budget = PixelBudget(total=100)
    peak, lock = [0], threading.Lock()

    def decode(pixels: int) -> None:
        with budget.held(pixels):
            with lock:
                peak[0] = max(peak[0], budget.used)
            time.sleep(0.01)

    threads = [threading.Thread(target=decode, args=(p,)) for p in (60, 60, 30, 30, 500, 10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads) and peak[0] <= 100 and budget.used == 0


def test_one_malformed_run_document_is_left_out_and_named_not_the_reports_end(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A status.json that is not JSON beside a good summary, then a summary of the wrong shape beside a
    good status: the report is written from the other, and says which was left out and why. A section
    builder that trips over a value genfab never writes costs that section, said on the page. Both
    documents unreadable: one line naming both."""
    from genfab.report import sections as section_module

    make_relighting_output(tmp_path, 2)
    summary = json.loads((tmp_path / "_genfab/summary.json").read_text())
    (tmp_path / "_genfab/status.json").write_bytes(b"[" * 60_000 + b"]" * 60_000)
    result = ReportWriter(open_storage(tmp_path.as_uri())).write()
    assert result.samples == 2 and len(result.left_out) == 1 and "status.json: not JSON" in result.left_out[0]
    page = (tmp_path / "_genfab/report/index.html").read_text()
    assert "Left out of this report: " in page and "status.json: not JSON" in page

    status = {"kind": "DatasetJob", "metadata": {"name": "big"}, "executor": "local",
              "status": {"phase": "Succeeded", "outputs": {"root": tmp_path.as_uri()},
                         "stages": [{"name": "organize", "phase": "Succeeded", "samples": {"total": 2}}]}}
    (tmp_path / "_genfab/status.json").write_text(json.dumps(status))
    (tmp_path / "_genfab/summary.json").write_text(json.dumps({**summary, "stages": 3}))
    result = ReportWriter(open_storage(tmp_path.as_uri())).write()
    assert len(result.left_out) == 1 and "summary.json: not what genfab writes there (stages" in result.left_out[0]
    where, text = write_run_report(tmp_path.as_uri(), {})
    assert where is not None and "left out: " in text and "summary.json" in text

    def tripped(listing: Listing) -> Section:
        raise TypeError("'int' object is not subscriptable")

    (tmp_path / "_genfab/summary.json").write_text(json.dumps(summary))
    monkeypatch.setitem(section_module.PIPELINES, "relighting", tripped)
    result = ReportWriter(open_storage(tmp_path.as_uri())).write()
    page = (tmp_path / "_genfab/report/index.html").read_text()
    assert "relighting: not shown" in page and "TypeError: &#x27;int&#x27; object is not subscriptable" in page
    assert "<h2>Run</h2>" in page  # the run's own section is still there

    (tmp_path / "_genfab/summary.json").write_text("{")
    (tmp_path / "_genfab/status.json").write_text("{")
    where, text = write_run_report(tmp_path.as_uri(), {})
    assert where is None and text.count("not JSON") == 2 and "\n" not in text


def test_a_report_that_fails_in_any_way_is_one_line_and_the_run_stands(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from genfab.cli.report import write_run_report

    make_relighting_output(tmp_path, 2)

    def broken(self: ReportWriter) -> None:
        raise RecursionError("maximum recursion depth exceeded\nwhile decoding")

    monkeypatch.setattr(ReportWriter, "write", broken)
    where, why = write_run_report(tmp_path.as_uri(), {})
    assert where is None and why == ("the report could not be written (RecursionError: maximum recursion depth "
                                     "exceeded while decoding)")


def test_the_review_server_answers_every_malformed_request_with_a_4xx(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import threading

    from genfab.selection import review as review_module
    from genfab.selection import served

    monkeypatch.setattr(review_module._Handler, "timeout", 3)
    monkeypatch.setattr(served, "MAX_CONNECTIONS", 4)
    gate_output(tmp_path)
    review = Review(open_storage(tmp_path.as_uri()))
    server = make_server(review, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def raw(request: bytes, wait: float = 5) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=wait) as conn:
            conn.sendall(request)
            received = b""
            while chunk := conn.recv(65536):
                received += chunk
            return received

    def post(length: str, token: str | None = None, body: bytes = b"") -> int:
        head = (f"POST /apply?token={token or review.token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Length: {length}\r\nConnection: close\r\n\r\n").encode()
        return int(raw(head + body).split(b" ", 2)[1])

    try:
        review.state()
        assert post("-1") == 400 and post("1e3") == 400 and post("abc") == 400 and post("٣") == 400
        assert post(str(5 << 20)) == 413
        assert post("2", token="tökén") == 403  # a non-ASCII token is a wrong token, not an error
        body = json.dumps({"choices": [["other/index_0009", "001", 0]]}).encode()
        assert post(str(len(body)), body=body) == 400  # a sample the page does not show
        started = time.monotonic()  # a half-sent request is dropped after the handler's timeout
        assert raw(b"POST /apply HTTP/1.1\r\nHost: x\r\nContent-Le") == b""
        assert time.monotonic() - started < 8
    finally:
        server.shutdown()
        server.server_close()


def serve_review(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Review, int]:
    """A review server of at most 4 connections, serving in a thread: (server, its review, its port)."""
    import threading

    from genfab.selection import served

    monkeypatch.setattr(served, "MAX_CONNECTIONS", 4)
    gate_output(tmp_path)
    review = Review(open_storage(tmp_path.as_uri()))
    review.state()
    server = make_server(review, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server, review, server.server_address[1]


def get_state(review: Review, port: int, wait: float = 10) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=wait) as conn:
        conn.sendall(f"GET /state?token={review.token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     "Connection: close\r\n\r\n".encode())
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
        return received


def code(answer: bytes) -> int:
    """An HTTP answer's status code."""
    return int(answer.split(b" ", 2)[1])


def test_slow_connections_never_keep_a_request_out_of_the_page_server(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Slowloris: connections that send a request a byte at a time (each byte well within the socket's
    idle timeout) hold every slot. Before, a person's request was answered 503 for as long as they
    trickled; now the longest of them is closed for it, and each is closed at its request deadline."""
    import socket
    import threading

    from genfab.selection import served

    monkeypatch.setattr(served, "REQUEST_SECONDS", 1.0)
    server, review, port = serve_review(tmp_path, monkeypatch)
    stop = threading.Event()
    closed: list[float] = []
    started = time.monotonic()

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", port)) as conn:
            try:
                for byte in b"GET /state HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000:
                    if stop.wait(0.2):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:  # closed by the server
                closed.append(time.monotonic() - started)

    slow = [threading.Thread(target=trickle, daemon=True) for _ in range(4)]
    try:
        for t in slow:
            t.start()
        deadline = time.monotonic() + 30
        while server.slots._value and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)
        assert server.slots._value == 0  # type: ignore[attr-defined]  # every slot held by a trickle
        assert code(get_state(review, port)) == 200
        for t in slow:
            t.join(timeout=30)
        assert len(closed) == 4 and max(closed) < 10, closed  # each closed by its deadline, not left to trickle
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


def test_a_page_server_whose_every_slot_is_answering_says_503(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Only connections being answered keep a new one out: it is told 503 at once (none is closed)."""
    import threading

    server, review, port = serve_review(tmp_path, monkeypatch)
    release, answering = threading.Event(), threading.Semaphore(0)
    state = review.state

    def slow_state() -> dict[str, Any]:
        answering.release()
        release.wait(30)
        return state()

    monkeypatch.setattr(review, "state", slow_state)
    busy = [threading.Thread(target=get_state, args=(review, port, 60), daemon=True) for _ in range(4)]
    try:
        for t in busy:
            t.start()
        for _ in busy:
            assert answering.acquire(timeout=30)
        assert code(get_state(review, port)) == 503
    finally:
        release.set()
        for t in busy:
            t.join(timeout=30)
        server.shutdown()
        server.server_close()


def test_a_sample_folder_named_like_markup_does_not_change_the_page(tmp_path: Path) -> None:
    from genfab.selection.review import page

    state = {"output": "file:///o", "executor": "local",
             "samples": [{"sample": "<!--<script>", "folder": "<!--<script>/scaffold", "gaps": []},
                         {"sample": "</script><b>x", "folder": "x", "gaps": []}]}
    html = page("tok", state)
    script = html.split("<script", 1)[1]
    assert "<!--" not in script.split("</script>", 1)[0] and "<b>x" not in html
    data = script.split("</script>", 1)[0]
    assert "\\u003c!--\\u003cscript\\u003e" in data  # the names are there, as JSON escapes


def test_genfabs_own_records_are_no_scene() -> None:
    """The quality tables live under `_genfab/quality/<stage>/`: a stage's name in a path, not a scene."""
    files = {"astronaut/gaussians/metrics.json": b"{}", "_genfab/quality/gaussians/abc/shard-00000.json": b"{}",
             "_genfab/quality/scaffold/abc/shard-00000.json": b"{}"}
    for pipeline, stages in (("vistadream", {"gaussians": ""}), ("worldexplorer", {"scaffold": "", "gaussians": ""})):
        for section in sections(listing(files, pipeline, stages)):
            for gallery in section.galleries:
                assert all(not r.sample.startswith("_genfab") for r in gallery.rows), (pipeline, gallery.title)
