"""What a user reads says what it means: no internal seed numbers or diary headings in the docs, the
examples and the benchmark pages; GPU figures stay out of the generated reference; the benchmarks'
landing table links every results page and its headline numbers are the pages' own; every pipeline
page has its known limits under their heading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import ROOT

USER_TEXT = sorted([*ROOT.glob("docs/**/*.md"), ROOT / "README.md", *ROOT.glob("examples/*.yaml"),
                    *ROOT.glob("benchmarks/results/*.md")])
DIARY = re.compile(r"\bissue \d+|\d{4}-\d\d-\d\d|\b(second|third|fourth|fifth) day\b|\b(later|previous) session\b",
                   re.IGNORECASE)
PIPELINE_PAGES = ["worldexplorer", "vistadream", "relighting", "reference-object", "difix-data", "difix-trainer"]


@pytest.mark.parametrize("path", USER_TEXT, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_internal_seed_numbers(path: Path) -> None:
    found = re.findall(r".{0,40}\b[Ss]eed 00\d.{0,20}", path.read_text())
    assert not found, found  # the lab's documents are named by their pipeline, not by their file's number


@pytest.mark.parametrize("path", USER_TEXT, ids=lambda p: str(p.relative_to(ROOT)))
def test_headings_say_what_not_when(path: Path) -> None:
    headings = [line for line in path.read_text().splitlines() if re.match(r"#+ ", line)]
    assert not [h for h in headings if DIARY.search(h)] if path.suffix == ".md" else True


def test_the_generated_reference_names_no_gpu_figures() -> None:
    for page in ROOT.glob("docs/reference/*.md"):
        assert not re.search(r"\b[HA]100\b|\bH200\b", page.read_text()), page.name


def test_the_benchmarks_table_links_every_page_and_quotes_it() -> None:
    index = (ROOT / "docs/benchmarks/index.md").read_text()
    table = [line for line in index.splitlines() if line.startswith("| ") and "](" in line]
    linked = {m for line in table for m in re.findall(r"\]\(([\w-]+\.md)\)", line)}
    pages = {p.name for p in (ROOT / "docs/benchmarks").glob("*.md")} - {"index.md"}
    assert linked == pages, pages ^ linked
    for line in table:
        page = re.findall(r"\]\(([\w-]+\.md)\)", line)
        sources = [ROOT / "benchmarks/results" / (ROOT / "docs/benchmarks" / p).read_text().split('"')[1]
                   .rsplit("/", 1)[1] for p in page]
        text = "".join(s.read_text() for s in sources)
        for figure in re.findall(r"\*\*([^*]+)\*\*", line):
            number = figure.rstrip("x×%").split(" ")[0]
            assert number in text, (figure, [s.name for s in sources])


@pytest.mark.parametrize("name", PIPELINE_PAGES)
def test_each_pipeline_page_has_its_known_limits(name: str) -> None:
    page = (ROOT / "docs/pipelines" / f"{name}.md").read_text()
    limits = page.split("\n## Known limits\n", 1)
    assert len(limits) == 2 and limits[1].lstrip().startswith("- "), name


def test_the_relighting_masks_defects_are_known_limits() -> None:
    limits = (ROOT / "docs/pipelines/relighting.md").read_text().split("\n## Known limits\n", 1)[1]
    section = limits.split("\n## ", 1)[0]
    assert "The `selfie` mask (the main job's)" in section and "The classical mask" in section


def test_the_cpu_route_pins_the_cpu_build_the_tests_use() -> None:
    """`requirements/cpu.txt`: PyTorch's CPU index, the `+cpu` build of the version `.[dev]` pins, then
    `.[tiny]` (which then keeps that torch); the quickstart says which install to use where."""
    lines = [line.split("#", 1)[0].strip() for line in (ROOT / "requirements/cpu.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    dev_pin = re.search(r'"torch==([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert dev_pin is not None
    assert lines == ["--extra-index-url https://download.pytorch.org/whl/cpu", f"torch=={dev_pin.group(1)}+cpu",
                     "-e .[tiny]"]
    quickstart = (ROOT / "docs/get-started/quickstart.md").read_text()
    assert "python scripts/install_cpu.py" in quickstart and "without an NVIDIA GPU" in quickstart
