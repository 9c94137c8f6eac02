"""The built site opened in a real browser (headless Chromium, Debian's package; `.ci/run` installs it):
the home page, a pipeline page and the reference render with their heading, without an uncaught
exception, a console error, a failed load or a request to any host but the local server, and their
screenshots (kept under the test's tmp folder, and under `GENFAB_DOCS_SCREENSHOTS` when set) are a page,
not a blank or single-colour image."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.docs.browser import VIEWPORT, serve, visit

PAGES = (
    ("index.html", "genfab"),
    ("pipelines/vistadream/index.html", "vistadream"),
    ("reference/scenejob/index.html", "SceneJob"),
)


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    with serve(site) as url:
        yield url


@pytest.mark.parametrize(("page", "heading"), PAGES)
def test_the_page_renders_without_errors_and_its_screenshot_is_not_blank(
        devtools: str, base_url: str, page: str, heading: str, tmp_path: Path) -> None:
    seen = visit(devtools, f"{base_url}/{page}")
    assert seen.problems == [], seen.problems
    assert heading in seen.heading and seen.title.endswith("genfab"), (seen.heading, seen.title)
    assert seen.text_length > 500
    shots = Path(os.environ.get("GENFAB_DOCS_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    (shots / (page.replace("/index.html", "").replace("/", "-").replace(".html", "") + ".png")).write_bytes(
        seen.screenshot)
    assert_looks_like_a_page(seen.screenshot)


def assert_looks_like_a_page(png: bytes) -> None:
    """A rendered page: the window's size, text and the theme's header in many colours and shades, not one
    colour (a blank or failed page) nor a few (an error screen)."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert image.shape == (VIEWPORT[1], VIEWPORT[0], 3), image.shape
    colours, counts = np.unique(image.reshape(-1, 3), axis=0, return_counts=True)
    background = counts.max() / counts.sum()
    assert len(colours) > 50, f"{len(colours)} colours"
    assert 1 - background > 0.02, f"{1 - background:.1%} of the pixels differ from the background"
    header = image[:40].reshape(-1, 3)  # material's header bar: the primary colour, not the page's white
    assert (np.abs(header.astype(int) - 255).sum(axis=1) > 60).mean() > 0.5


def test_a_blank_or_one_colour_screenshot_is_caught() -> None:
    for picture in (np.full((900, 1280, 3), 255, np.uint8), np.zeros((900, 1280, 3), np.uint8)):
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, format="PNG")
        with pytest.raises(AssertionError):
            assert_looks_like_a_page(buffer.getvalue())


READABLE = ("pipelines/relighting/index.html", "pipelines/difix-data/index.html",
            "get-started/quickstart/index.html", "reference/datasetjob/index.html")
MEASURE = """(() => {
  const article = document.querySelector('article');
  const cells = [...article.querySelectorAll('table td, table th')].filter(c => c.innerText.trim().length > 3);
  return {
    column: article.getBoundingClientRect().width,
    narrowest: cells.length ? Math.min(...cells.map(c => c.getBoundingClientRect().width)) : 9999,
    clippedCode: [...article.querySelectorAll('pre > code')].filter(c => c.scrollWidth > c.clientWidth + 1)
                   .map(c => c.innerText.slice(0, 60)),
    overflowingTables: [...article.querySelectorAll('table')].filter(t => t.scrollWidth > t.clientWidth + 1)
                   .map(t => t.innerText.slice(0, 60)),
    pictures: [...article.querySelectorAll('img')].map(i => ({src: i.getAttribute('src'), shown: i.width,
               natural: i.naturalWidth, loaded: i.complete && i.naturalWidth > 0})),
  };
})()"""


@pytest.mark.parametrize("page", READABLE)
def test_tables_code_and_pictures_are_readable_at_1280_pixels(devtools: str, base_url: str, page: str,
                                                              tmp_path: Path) -> None:
    """At a laptop's 1280 px: no command hidden past its block's edge (they wrap), no table column so
    narrow it shows a character per line, every picture loaded and shown at least at the text column's
    width or its own; each table and picture photographed whole is a picture, not blank."""
    seen = visit(devtools, f"{base_url}/{page}", measure=MEASURE, shoot="article table, article img")
    assert seen.problems == [], seen.problems
    facts = seen.measured
    assert facts["clippedCode"] == [], facts["clippedCode"]
    assert facts["narrowest"] >= 60, f"a table cell {facts['narrowest']:.0f} px wide"
    assert facts["overflowingTables"] == [], facts["overflowingTables"]  # no text hidden past a table's edge
    for picture in facts["pictures"]:
        assert picture["loaded"], picture
        assert picture["shown"] >= min(picture["natural"], facts["column"]) - 2, picture
    shots = Path(os.environ.get("GENFAB_DOCS_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    for n, part in enumerate(seen.parts):
        (shots / f"{page.replace('/index.html', '').replace('/', '-')}-{n}.png").write_bytes(part)
        image = np.asarray(Image.open(io.BytesIO(part)).convert("L"))
        assert image.std() > 10, f"element {n} of {page} photographs blank"
