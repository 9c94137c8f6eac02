"""The operator package's structure, drawn from its own imports (grimp, import-linter's graph library).

Prints, for the tree on `PYTHONPATH`: its modules and import arrows inside `genfab.operator`, the arrows
counted transitively (what each module depends on through others), the arrows into the vocabulary module,
circles (modules that import themselves back), arrows that point up the layers of the import contract in
pyproject.toml ("Inside the operator: ..."), and the drawing: each layer, top first, with each module's
arrows.

    PYTHONPATH=operator:stages:. python scripts/operator_structure.py
    PYTHONPATH=OLD/operator:OLD/stages:OLD python scripts/operator_structure.py   # an older tree, same layers
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import grimp

PACKAGE = "genfab.operator"
CONTRACT = "Inside the operator"
VOCABULARY = f"{PACKAGE}.objects"


def layers(pyproject: Path) -> list[list[str]]:
    """The operator's layers, top first, each a list of module names (the contract's, in pyproject.toml)."""
    contracts = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]
    contract = next(c for c in contracts if c["name"].startswith(CONTRACT))
    return [[f"{PACKAGE}.{m.strip()}" for m in layer.replace("|", ":").split(":")] for layer in contract["layers"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pyproject", type=Path, default=Path(__file__).resolve().parents[1] / "pyproject.toml")
    args = ap.parse_args()
    graph = grimp.build_graph("genfab")
    modules = sorted(m for m in graph.modules if m.startswith(f"{PACKAGE}."))
    inside = set(modules)
    deps = {m: graph.find_modules_directly_imported_by(m) & inside for m in modules}
    reach = {m: graph.find_downstream_modules(m) & inside for m in modules}
    level = {m: i for i, layer in enumerate(layers(args.pyproject)) for m in layer}
    unplaced = [m for m in modules if m not in level]
    upward = [(a, b) for a in modules for b in deps[a] if a in level and b in level and level[b] < level[a]]
    circles = [m for m in modules if m in reach[m]]
    short = len(PACKAGE) + 1
    print(f"modules {len(modules)}, import arrows {sum(map(len, deps.values()))}, transitive "
          f"{sum(map(len, reach.values()))}, into {VOCABULARY[short:]} "
          f"{sum(VOCABULARY in d for d in deps.values())}, modules in a circle {len(circles)}, upward arrows "
          f"{len(upward)}, modules outside the contract's layers {len(unplaced)}")
    for a, b in upward:
        print(f"  upward: {a[short:]} -> {b[short:]}")
    for i, layer in enumerate([*layers(args.pyproject), unplaced]):
        present = [m for m in layer if m in inside]
        if not present:
            continue
        print(f"\n{'layer ' + str(i + 1) if layer is not unplaced else 'outside the layers'}")
        for m in present:
            print(f"  {m[short:]:<18} -> {' '.join(sorted(d[short:] for d in deps[m])) or '-'}")


if __name__ == "__main__":
    main()
