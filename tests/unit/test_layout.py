"""Project layout invariants from DESIGN.md."""

from __future__ import annotations

import importlib
import operator as stdlib_operator

from genfab.api.catalog import FAMILIES, PIPELINES, stage_families
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


def test_every_catalog_stage_has_one_known_family() -> None:
    families = stage_families()
    assert set(families.values()) <= set(FAMILIES)
    for pipeline, stages in PIPELINES.items():
        names = [s.name for s in stages]
        assert len(names) == len(set(names)), pipeline
        for s in stages:
            assert set(s.upstream) <= set(names[: names.index(s.name)]), f"{pipeline}/{s.name} upstream order"
