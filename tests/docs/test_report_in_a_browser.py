"""The run report and the review page opened in a real browser (headless Chromium, as the site's
pages): the CPU examples run with `genfab run` as a user runs them, their reports open with no console
error and no request to another host, show the expected sample rows with every picture loaded, and
photograph as a page, not a blank; worldexplorer's manual example is completed from the review page by
clicks and keys, and the output is then what `genfab select` makes from the same choices.

`GENFAB_UPDATE_SCREENSHOTS=1` writes the screenshots the docs show (docs/images/report-relighting.jpg,
review-page.jpg)."""

from __future__ import annotations

import filecmp
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from genfab.api.quality import DIFIX_TRIPLET, RELIGHTING
from tests.docs.browser import interact, serve, visit
from tests.helpers import ROOT, genfab_run
from tests.made_once import CompletedRun, copy_of, tiny_models

SHOTS = ROOT / "docs" / "images"
PICTURES = ("[...document.querySelectorAll('table.gallery img')].map(i => i.complete && i.naturalWidth > 0)")


def example(folder: Path, name: str) -> dict[str, Any]:
    """An example as a user runs it from the repository root (its relative paths kept)."""
    if not (folder / "examples").exists():
        (folder / "examples").symlink_to(ROOT / "examples")
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return doc


def not_blank(png: bytes) -> None:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)
    assert pixels.std() > 12, "the screenshot is blank or one colour"


def keep(png: bytes, name: str) -> None:
    """The docs' copy, as a JPEG (a tenth of the PNG's size)."""
    if os.environ.get("GENFAB_UPDATE_SCREENSHOTS"):
        Image.open(io.BytesIO(png)).convert("RGB").save(SHOTS / name, "JPEG", quality=85, optimize=True)


LAPTOP_AND_DESKTOP = (1366, 1920)
FITS = ("{page: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight, "
        "facts: Math.max(...[...document.querySelectorAll('dl.facts')]"
        ".map(d => d.getBoundingClientRect().right)), smallest: Math.min(...[...document.querySelectorAll("
        "'table.gallery img')].map(i => i.getBoundingClientRect().width))}")


def open_report(devtools: str, output: Path, page: str = "index.html") -> Any:
    with serve(output) as base:
        return visit(devtools, f"{base}/_genfab/report/{page}", settle_s=0.5, shoot="table.gallery",
                     measure=f"{{pictures: {PICTURES}, rows: [...document.querySelectorAll('table.gallery')]"
                             ".map(t => t.tBodies[0].rows.length), plots: [...document.querySelectorAll('img.plot')]"
                             ".map(i => i.naturalWidth), text: document.body.innerText}")


def test_the_main_jobs_report_shows_the_four_portraits_stages(main_job: tuple[Path, CompletedRun],
                                                              devtools: str) -> None:
    folder, done = main_job  # the session's one run of the README's command
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-2:]
    assert last[0].startswith("report:  genfab-runs/relight-portraits/_genfab/report/index.html (4 of 4"), last
    assert last[1] == "yield: 4 of 4 inputs made it through every stage (100 %)", last
    output = folder / "genfab-runs/relight-portraits"
    page = open_report(devtools, output)
    assert page.problems == [], page.problems
    assert page.title == "DatasetJob/relight-portraits (relighting)"
    # the pairs once: four samples need no worst-first gallery per figure, a table of their figures says it
    assert page.measured["rows"] == [4], page.measured["rows"]
    assert len(page.measured["pictures"]) == 4 * 5 and all(page.measured["pictures"])
    assert len(page.measured["plots"]) == len(RELIGHTING) and all(page.measured["plots"])  # a histogram each
    assert "Worst first" not in page.measured["text"]
    assert all(f"Figures of each sample: {stage}" in page.measured["text"] for stage in ("segment", "recombine"))
    assert "hopper" in page.measured["text"]
    for words in ("astronaut", "biden", "hopper", "obama", "softShading", "classical", "retinex (msr-lightness)",
                  "segment", "albedo", "degrade", "recombine", "organize", "no sample was dropped",
                  "every stage ran on CPUs: no GPU time"):
        assert words in page.measured["text"], words
    not_blank(page.screenshot)
    gallery = page.parts[0]
    not_blank(gallery)
    keep(gallery, "report-relighting.jpg")
    with serve(output) as base:  # a laptop's screen and a desktop's: every facts column is on screen
        for width in LAPTOP_AND_DESKTOP:
            fits = visit(devtools, f"{base}/_genfab/report/index.html", settle_s=0.3, viewport=(width, 900),
                         measure=FITS)
            assert fits.problems == [], fits.problems
            assert fits.measured["page"] <= width and fits.measured["facts"] <= width, (width, fits.measured)
            assert fits.measured["smallest"] >= 120, (width, fits.measured)  # thumbnails still big enough to see
            assert fits.measured["height"] <= 6000, (width, fits.measured)  # four samples at a glance


def test_a_large_gallery_pages_and_the_difix_triplets_say_their_split(difix_local: tuple[Path, CompletedRun],
                                                                      devtools: str) -> None:
    folder, done = difix_local  # the session's one run of the example
    assert done.returncode == 0, done.stdout + done.stderr
    output = folder / "genfab-runs/difix-procedural"
    first = open_report(devtools, output)
    assert first.problems == [], first.problems
    # 60 triplets, 50 to a page; then the eight worst by each triplet figure
    assert first.measured["rows"] == [50] + [8] * len(DIFIX_TRIPLET) and all(first.measured["pictures"])
    assert "page 1 of 2" in first.measured["text"] and "train" in first.measured["text"]
    second = open_report(devtools, output, "triplets-2.html")
    assert second.problems == [] and second.measured["rows"] == [10], second.problems
    not_blank(second.parts[0])


@pytest.mark.parametrize(("name", "output", "rows"), [
    ("datasetjob-custom-stage.yaml", "portraits-custom", [4]),  # segment replaced: its masks, nothing after
    # three scaffolds (no scene: no GPU); three samples get a table of their figures, no worst-first gallery
    ("scenejob-worldexplorer-tiny.yaml", "worldexplorer-tiny", [3]),
])
def test_each_cpu_examples_report_opens(tmp_path: Path, devtools: str, name: str, output: str, rows: list[int]) -> None:
    doc = example(tmp_path, name)
    if "models" in doc["spec"]:
        doc["spec"]["models"]["uri"] = tiny_models("save_worldexplorer_models").as_uri()
    done = genfab_run(tmp_path, doc, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    page = open_report(devtools, tmp_path / "genfab-runs" / output)
    assert page.problems == [], page.problems
    assert page.measured["rows"] == rows and all(page.measured["pictures"]), page.measured["rows"]
    not_blank(page.screenshot)


def test_a_tuning_runs_report_has_its_curves_and_each_checkpoints_grid(
        tmp_path: Path, devtools: str, difix_local: tuple[Path, CompletedRun]) -> None:
    folder, exported = difix_local  # the session's export; the tuning run writes into a copy of it
    assert exported.returncode == 0, exported.stdout + exported.stderr
    copy_of(folder / "genfab-runs", tmp_path / "genfab-runs")
    doc = example(tmp_path, "tuningrun-difix-local.yaml")
    doc["spec"]["models"]["uri"] = tiny_models("save_tuning_models").as_uri()
    done = genfab_run(tmp_path, doc, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    page = open_report(devtools, tmp_path / "genfab-runs/difix-procedural/tuning_runs/tiny-local")
    assert page.problems == [], page.problems
    assert page.measured["rows"] == [2] and all(page.measured["pictures"])  # checkpoints 3 and 6
    assert len(page.measured["plots"]) == 3 and all(page.measured["plots"])  # loss, learning rate, eval PSNR
    assert "Evaluation per checkpoint" in page.measured["text"] and "model_6.pkl" in page.measured["text"]


def test_the_manual_example_is_completed_from_the_review_page(tmp_path: Path, devtools: str) -> None:
    from scripts.tiny_models import save_worldexplorer_models

    models = save_worldexplorer_models(tmp_path / "genfab-models")
    doc = example(tmp_path, "scenejob-worldexplorer-manual.yaml")
    doc["spec"]["models"]["uri"] = models.as_uri()
    stopped = genfab_run(tmp_path, doc, timeout=300)
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr  # at the gate
    output = tmp_path / "genfab-runs/worldexplorer-manual"
    report = open_report(devtools, output)
    assert report.problems == [], report.problems
    assert "Candidates awaiting a person's choice" in report.measured["text"]
    assert report.measured["rows"][1] == 4 and all(report.measured["pictures"])  # the four in-between views
    twin = tmp_path / "twin"  # the same output, for `genfab select`
    shutil.copytree(output, twin)

    server = subprocess.Popen([sys.executable, "-m", "genfab.cli.main", "review", str(output)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in
                                                                               ("operator", "stages", ""))})
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:") and "token=" in url, url
        gap = "div.gap[data-gap='{}'] button.cand[data-k='{}']"
        visit_, results = interact(devtools, url, [
            ("click", gap.format("001", 1)),  # a click on view 001's candidate 1
            ("key", "j"), ("key", "2"),       # the next view (003): candidate 2 by key; moves on to 005
            ("key", "l"),                     # 005: the first candidate (0)
            ("key", "ArrowDown"), ("click", gap.format("007", 1)),
            ("eval", "window.scrollTo(0, 0) || true"), ("shot", ""),
            ("click", "#apply"),
            ("wait", "!document.getElementById('result').hidden"),
            ("eval", "document.getElementById('result').textContent"),
            ("eval", "document.querySelectorAll('div.gap').length"),
        ])
        assert visit_.problems == [], visit_.problems
        chosen_shot, text, left = results[7], results[10], results[11]
        assert left == 0  # no view waits any more: the page says so
        assert "stylized/index_0000: final/001.png <- candidates/001_01.png; final/003.png <- candidates/003_02.png; " \
               "final/005.png <- candidates/005_00.png; final/007.png <- candidates/007_01.png; final/ is complete" \
               in text, text
        assert "run the same `genfab run` command again" in text
        not_blank(chosen_shot)
        keep(chosen_shot, "review-page.jpg")
        server.wait(timeout=20)  # nothing waits any more: it ends by itself, saying so
        assert "all chosen: run the same `genfab run` command again" in server.stdout.read()
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=10)
    assert server.returncode == 0

    select = subprocess.run([sys.executable, "-m", "genfab.cli.main", "select", "job.yaml", "--out", twin.as_uri(),
                             "--choose", "stylized/index_0000:001=1", "--choose", "stylized/index_0000:003=2",
                             "--choose", "stylized/index_0000:005=0", "--choose", "stylized/index_0000:007=1"],
                            cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in
                                                                             ("operator", "stages", ""))})
    assert select.returncode == 0, select.stderr
    sample = "stylized/index_0000/scaffold"
    same = filecmp.dircmp(output / sample, twin / sample)
    assert not same.left_only and not same.right_only
    compared = filecmp.cmpfiles(output / sample / "final", twin / sample / "final",
                                [f"{v:03d}.png" for v in range(8)], shallow=False)
    assert compared[0] == [f"{v:03d}.png" for v in range(8)], compared  # byte-identical final views

    again = genfab_run(tmp_path, doc, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr  # the gate is open: the scaffold completes
