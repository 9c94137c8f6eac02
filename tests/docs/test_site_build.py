"""The documentation site builds with `mkdocs build --strict` (a broken link, anchor, missing include
or page left out of the navigation fails) and needs no network to be read: no web fonts, no script
or stylesheet from another host."""

from __future__ import annotations

import re
from pathlib import Path

FETCHED = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]+\"", re.I)


def test_the_site_has_the_home_page_the_reference_and_the_benchmarks(site: Path) -> None:
    for page in ("index.html", "reference/scenejob/index.html", "reference/cli/index.html",
                 "pipelines/vistadream/index.html", "benchmarks/gaussians/index.html"):
        assert (site / page).is_file(), page
    # the benchmark pages include the results files themselves, not a copy
    gaussians = (site / "benchmarks/gaussians/index.html").read_text()
    assert "simple_trainer" in gaussians and "--8&lt;--" not in gaussians


def test_nothing_is_fetched_from_another_host(site: Path) -> None:
    for page in site.rglob("*.html"):
        assert not FETCHED.findall(page.read_text()), page
    for sheet in site.rglob("*.css"):
        assert "@import url(http" not in sheet.read_text().replace(" ", ""), sheet


def test_every_include_is_resolved(site: Path) -> None:
    """The generated stage tables, model lists, benchmark results and the README's set-up section are
    included into pages by `--8<--` lines; none may reach a reader unresolved."""
    for page in site.rglob("*.html"):
        assert "--8&lt;--" not in page.read_text(), page
    quickstart = (site / "get-started/quickstart/index.html").read_text()
    assert "The two set-up commands" in quickstart
    assert ".venv/bin/pytest -n 2\n" in re.sub(r"<[^>]+>", "", quickstart)  # the code block's text, unhighlighted
