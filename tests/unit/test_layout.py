"""Project layout invariants: genfab is a namespace package over its two source roots, nothing shadows
the stdlib `operator`, and every pipeline declaration is consistent and uses every image family."""

from __future__ import annotations

import importlib
import operator as stdlib_operator

from genfab.api.families import FAMILIES
from genfab.api.pipeline import pipelines, used_families
from tests.helpers import ROOT


def test_no_top_level_package_shadows_stdlib_operator() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()
    assert stdlib_operator.add(1, 2) == 3 and stdlib_operator.__file__.endswith("operator.py")


def test_genfab_is_a_namespace_package_over_both_roots() -> None:
    assert not (ROOT / "operator" / "genfab" / "__init__.py").exists()
    assert not (ROOT / "stages" / "genfab" / "__init__.py").exists()
    genfab = importlib.import_module("genfab")
    roots = {p.rsplit("/", 2)[-2] for p in genfab.__path__}
    assert {"operator", "stages"} <= roots
    importlib.import_module("genfab.stages")


def test_every_pipeline_declaration_is_consistent_and_every_family_is_used() -> None:
    for p in pipelines().values():
        p.check()  # known families, upstream declared earlier, `module:Class` implementations
        for stage in p.stages:
            assert stage.settings.model_config.get("extra") == "forbid", f"{p.name}/{stage.name}"
    assert used_families() == tuple(FAMILIES), "every image family runs some stage"
    # A stage name maps to one family wherever it appears (its image).
    families: dict[str, str] = {}
    for p in pipelines().values():
        for stage in p.stages:
            assert families.setdefault(stage.name, stage.family) == stage.family, stage.name


def test_the_readme_pipeline_table_says_what_runs_today() -> None:
    """The README's "runs today" column follows the pipeline declarations (yes, or what is missing)."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("| resource | pipeline |")
    table = readme[start:readme.index("\n\n", start)]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:] if line.startswith("|")]
    assert len(rows) == len(pipelines())
    for p in pipelines().values():
        row = next(r for r in rows if r[0] == f"`{p.kind}`" and r[1].startswith(f"`{p.value}`"))
        runs = row[4]
        if p.runs_today:
            assert runs == "yes", p.name
        elif p.unimplemented == p.stage_names:
            assert runs.startswith("no"), p.name
        else:
            implemented = [s for s in p.stage_names if s not in p.unimplemented]
            assert runs.startswith(" ".join(implemented) + " only"), (p.name, runs)
