"""Every stage's settings class holds exactly what its code reads (issue: what decides an output).

A field a stage never reads would still be hashed, so changing it would re-run the stage for
nothing. The reads are found by scanning source: the stage's implementation module and every genfab
module it imports (transitively, imports inside functions too), the functions of API modules it
reaches (not their validation rules), the methods of the settings' own models, and the pipeline's
`refuses`/`manual_gate`/`units` functions. A field counts as read when its name is an attribute
access, or its name or camelCase alias a string, somewhere in that code.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import textwrap
import typing
from collections.abc import Iterator
from functools import cache

import pytest
from pydantic import BaseModel

from genfab.api.pipeline import StageDecl, pipelines

WORLDEXPLORER_ONLY = ("input.samples.scaffold.prompts", "input.samples.scaffold.theme", "input.samples.expansion",
                      "input.samples.expansion.trajectory", "input.samples.expansion.num_frames",
                      "input.samples.expansion.distance")
"""A curated sample's own fields only worldexplorer's stages read."""
EXEMPT = {
    ("vistadream", "gaussians"): {
        # The built-in stage refuses refinement (`no_refinement_here` reads whether it is set); a custom
        # `gaussians` stage replacing it gets the same settings and does the refinement.
        # (It used to look as if it read the others: its trainer module imported the refiner.)
        "refinement.base_model", "refinement.fix_final_renders", "refinement.timestep", "refinement.novel_views",
        "refinement.novel_weight", "refinement.prompt", "refinement.novel_distance",
        "refinement.novel_probability", "refinement.fix_steps",
    },
    # The curated set's per-sample prompts, theme and expansion fields feed worldexplorer; vistadream's
    # drafts leave them unset (`scene_input_without_prompts`), so they are never hashed there.
    ("vistadream", "depth"): {"input.samples.prompt", *WORLDEXPLORER_ONLY},
    ("vistadream", "outpaint"): set(WORLDEXPLORER_ONLY),
}
"""Fields a stage's settings class holds that the built-in stage does not read, and why."""


@cache
def _source(module: str) -> str | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    with open(spec.origin) as fh:
        return fh.read()


def _imports(tree: ast.AST, module: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("genfab.") and not m.startswith("genfab.api.pipelines")}


def _without_rules(tree: ast.Module) -> ast.Module:
    """API modules: validation rules read fields to check them, which is not a stage reading them."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            node.body = [b for b in node.body if not (isinstance(b, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "rules" for t in b.targets))]
    return tree


def _trees(start: str) -> Iterator[ast.AST]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        source = _source(module)
        if module in seen or source is None:
            continue
        seen.add(module)
        tree = ast.parse(source)
        todo.extend(_imports(tree, module))
        yield _without_rules(tree) if module.startswith("genfab.api.") else tree


def _models(annotation: typing.Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str, str]]:
    for name, info in model.model_fields.items():
        yield prefix + name, name, info.alias or name
        for sub in _models(info.annotation):
            yield from _fields(sub, f"{prefix}{name}.")


def _all_models(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    yield model
    for info in model.model_fields.values():
        for sub in _models(info.annotation):
            yield from _all_models(sub)


def _read_names(decl: StageDecl) -> set[str]:
    assert decl.implementation is not None
    trees = list(_trees(decl.implementation.partition(":")[0]))
    extra = [inspect.getsource(f) for f in (decl.refuses, decl.manual_gate) if f is not None]
    if decl.units:
        trees.extend(_trees(decl.units.partition(":")[0]))
    for model in _all_models(decl.settings):  # the models' own methods (`count()`, `effective_group_by()`)
        for cls in model.__mro__:
            if cls.__module__.startswith("genfab."):
                extra.extend(inspect.getsource(m) for m in vars(cls).values() if inspect.isfunction(m))
    trees.extend(ast.parse(textwrap.dedent(s)) for s in extra)
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
    return names


BUILT_IN = [(p.name, s) for p in pipelines().values() for s in p.stages if s.implementation is not None]


@pytest.mark.parametrize(("pipeline", "decl"), BUILT_IN, ids=[f"{p}:{s.name}" for p, s in BUILT_IN])
def test_a_stage_settings_class_holds_only_what_the_stage_reads(pipeline: str, decl: StageDecl) -> None:
    read = _read_names(decl)
    unread = {path for path, name, alias in _fields(decl.settings) if name not in read and alias not in read}
    assert unread == EXEMPT.get((pipeline, decl.name), set()), (
        f"{decl.settings.__name__} holds fields stage {pipeline}/{decl.name} never reads: they would be hashed, so "
        "changing them would re-run it for nothing; take them out (or read them)")


def test_the_scan_sees_an_unread_field() -> None:
    """The check can fail: a settings class with a field no stage code mentions is caught."""

    class Unread(BaseModel):
        zz_never_read_anywhere: int = 0

    decl = StageDecl("x", family="cv", description="", settings=Unread,
                     implementation="genfab.stages.relighting.albedo_stage:ALBEDO")
    assert "zz_never_read_anywhere" not in _read_names(decl)
