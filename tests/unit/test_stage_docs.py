"""Each pipeline's stage table, stage picture and model list (docs/pipelines/stages/) come from the
pipeline declarations: every stage is in them, the picture's arrows follow `upstream`, and the model
list holds the models the stages' settings mark as loaded."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from genfab.api.pipeline import KIND_SHAPES, pipelines
from genfab.api.stage_docs import depths, models_table, stage_docs, stage_graph, stage_table
from tests.helpers import ROOT

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("name", sorted(pipelines()))
def test_every_stage_is_in_the_table_and_the_picture_with_one_arrow_per_upstream(name: str) -> None:
    pipeline = pipelines()[name]
    table, picture = stage_table(pipeline), ET.fromstring(stage_graph(pipeline))
    labels = [t.text for t in picture.iter(f"{SVG}text")]
    for stage in pipeline.stages:
        assert f"| `{stage.name}` |" in table
        assert stage.name in labels
    assert len(list(picture.iter(f"{SVG}polyline"))) == sum(len(s.upstream) for s in pipeline.stages)


@pytest.mark.parametrize(("name", "expected"), [
    ("vistadream", {"outpaint": 0, "depth": 1, "gaussians": 2, "coarse": 3, "render": 4}),
    ("reference-object", {"white-background": 0, "perspectives": 1, "prompts": 2, "scenes": 3,
                          "qwen-augmentation": 4, "annotation": 4, "cv-augmentation": 5}),
])
def test_a_stage_sits_one_row_below_its_deepest_upstream(name: str, expected: dict[str, int]) -> None:
    assert depths(pipelines()[name].stages) == expected


@pytest.mark.parametrize(("name", "row"), [
    ("vistadream", "| `outpaint` | `spec.vistadream.fluxFillModel` | `black-forest-labs/FLUX.1-Fill-dev` |"),
    ("relighting", "| `segment` | `spec.relighting.segmentation.sam3Model` | `facebook/sam3` |"),
    ("tuning-difix", "| `train` | `spec.baseModel` | `stabilityai/sd-turbo` |"),
    ("worldexplorer", "| `expansion` | `spec.worldexplorer.vggt.model` | `facebook/VGGT-1B` |"),
    ("reference-object", "`llama3.1` (served by the LLM endpoint, not a folder)"),
])
def test_the_model_list_names_the_models_a_stage_loads(name: str, row: str) -> None:
    assert row in models_table(pipelines()[name])


def test_there_are_three_files_per_pipeline_a_figures_table_and_the_labs_table_where_it_has_them() -> None:
    assert set(stage_docs()) == ({f"{n}{suffix}" for n in pipelines() for suffix in (".md", ".svg", "-models.md")}
                                 | {f"{n}-quality.md" for n, p in pipelines().items() if p.figures}
                                 | {f"{n}-lab.md" for n, p in pipelines().items() if p.lab is not None})
    assert "| `straightRunPx` | `segment` |" in stage_docs()["relighting-quality.md"]


@pytest.mark.parametrize("name", sorted(pipelines()))
def test_every_model_row_names_a_spec_field_with_a_default(name: str) -> None:
    rows = [line.split(" | ") for line in models_table(pipelines()[name]).splitlines() if line.startswith("| `")]
    for row in rows:
        assert row[1].startswith("`spec.") and row[2].startswith("`") and row[2] != "``", row


PAGES = {"worldexplorer": "worldexplorer.md", "vistadream": "vistadream.md", "relighting": "relighting.md",
         "reference-object": "reference-object.md", "difix": "difix-data.md", "tuning-difix": "difix-trainer.md"}
"""Each pipeline's page under docs/pipelines/."""


@pytest.mark.parametrize("name", sorted(pipelines()))
def test_each_pipeline_has_a_page_that_selects_it_as_the_api_does(name: str) -> None:
    pipeline = pipelines()[name]
    page = (ROOT / "docs" / "pipelines" / PAGES[name]).read_text()
    assert f"`{KIND_SHAPES[pipeline.kind].selector_alias}: {pipeline.value}`" in page
    assert f'--8<-- "docs/pipelines/stages/{name}.md"' in page and f"(stages/{name}.svg)" in page


def test_every_output_path_is_shown_whole_in_the_stage_picture() -> None:
    """No path is cut short ("…"): long layouts wrap onto more lines of a taller box."""
    from genfab.api.pipeline import pipelines
    from genfab.api.stage_docs import OUTPUT_CHARS, output_lines, stage_graph

    for pipeline in pipelines().values():
        svg = stage_graph(pipeline)
        assert "…" not in svg
        for stage in pipeline.stages:
            lines = output_lines(stage.output)
            assert all(len(line) <= OUTPUT_CHARS for line in lines), lines
            assert "".join(lines).replace(" ", "") == stage.output.replace(" ", "")
