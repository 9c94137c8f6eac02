"""Every name a benchmark script imports from genfab, the other benchmarks or scripts/ exists: the scripts
run only on GPU machines, so a renamed module or class would otherwise break them unnoticed
(benchmarks/vistadream.py and flux_blocks.py imported a `speed.Options` renamed long before)."""

from __future__ import annotations

import ast
import importlib
import sys

import pytest

from tests.helpers import ROOT

SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))
OURS = ("genfab", "benchmarks", "scripts")


def imported(path: str) -> list[tuple[str, str]]:
    """(module, name) of every `from <ours> import <name>` in the file, at any depth (lazy imports too)."""
    tree = ast.parse((ROOT / path).read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            module = node.module
            if module.split(".")[0] not in OURS and (ROOT / "benchmarks" / f"{module}.py").is_file():
                module = f"benchmarks.{module}"  # a sibling imported as the script's own folder sees it
            if module.split(".")[0] in OURS:
                out += [(module, alias.name) for alias in node.names]
    return out


@pytest.mark.parametrize("script", [p.relative_to(ROOT).as_posix() for p in SCRIPTS])
def test_every_name_a_benchmark_imports_from_this_repository_exists(script: str) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    missing = []
    for module, name in imported(script):
        try:
            found = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] in OURS:
                missing.append(f"{module} (module)")
            continue  # a GPU-only dependency (gsplat, sam2, SEVA's code) this machine lacks
        if not hasattr(found, name) and importlib.util.find_spec(f"{module}.{name}") is None:
            missing.append(f"{module}.{name}")
    assert not missing, f"{script} imports what does not exist: {', '.join(missing)}"
