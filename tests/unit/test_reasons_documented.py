"""Every reason the operator's code can put on a resource has a troubleshooting entry (meaning and
fix, genfab.api.reasons): the reasons are read from the code itself (`Stall(...)`, `reason=...`,
`set_condition(...)`, the reason constants), so a new one without an entry fails here."""

from __future__ import annotations

import ast
from pathlib import Path

from genfab.api.reasons import BY_NAME, REASONS, troubleshooting_page

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "genfab"
SOURCES = [*(PACKAGE / "operator").glob("*.py"), *(PACKAGE / "sequencing").glob("*.py"),
           *(PACKAGE / "status").glob("*.py")]
NORMAL = {"Planned", "Valid", "Progressing", "StageRunning", "Suspended", "NotSuspended", "Waiting", "Chosen",
          "Succeeded", "PartiallySucceeded", "Failed"}
"""Reasons of a resource going as it should (a condition's reason while planned, valid, running,
suspended, waiting for a person's choice, or the final phase): nothing to troubleshoot."""


def literals(node: ast.AST | None) -> set[str]:
    """The strings an expression can evaluate to, where the code writes them out (`a if c else "B"`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return literals(node.body) | literals(node.orelse)
    if isinstance(node, ast.BoolOp):
        return set().union(*(literals(v) for v in node.values))
    return set()


def reasons_in_code() -> set[str]:
    found: set[str] = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name == "Stall" and node.args:
                    found |= literals(node.args[0])
                if name == "set_condition" and len(node.args) > 3:
                    found |= literals(node.args[3])
                for k in node.keywords:
                    if k.arg == "reason":
                        found |= literals(k.value)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    names = target.elts if isinstance(target, ast.Tuple) else [target]
                    values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                    for t, v in zip(names, values, strict=False):
                        tname = getattr(t, "id", "")
                        if tname == "reason" or tname in ("REASON", "STORAGE_UNAVAILABLE", "WAITING_FOR_REFERENCE"):
                            found |= literals(v)
                        if tname == "STALL_ORDER" and isinstance(v, ast.Tuple):
                            found |= set().union(*(literals(e) for e in v.elts))
    return found - {""}  # `Stall("", "")`: observe's stand-in for "no trouble"


def test_every_reason_the_code_sets_is_documented() -> None:
    found = reasons_in_code()
    assert {"NamespaceNotReady", "StorageUnavailable", "NoProgress", "ImagePullBackOff", "InvalidSpec"} <= found
    missing = sorted(found - set(BY_NAME) - NORMAL)
    assert not missing, f"reasons without a troubleshooting entry in genfab.api.reasons: {missing}"


def test_the_page_has_a_section_per_reason_with_its_fix() -> None:
    page = troubleshooting_page()
    assert len(BY_NAME) == len(REASONS)
    for r in REASONS:
        section = page.split(f"## {r.name}\n", 1)[1].split("\n## ", 1)[0]
        assert r.means in section and r.fix in section


def sample_reasons_in_code() -> set[str]:
    """The reasons the stages' code drops a sample with (`SampleError("Reason", ...)`)."""
    found: set[str] = set()
    for path in (PACKAGE.parent.parent / "stages" / "genfab").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "SampleError" and node.args:
                found |= literals(node.args[0])
    return found


def test_every_reason_a_sample_is_dropped_with_is_documented() -> None:
    from genfab.api.reasons import GATE_REASONS, SAMPLE_BY_NAME

    found = sample_reasons_in_code()
    assert {"Unreadable", "Grayscale", "TooSmall", "EmptyMask", "NoMask", "BadScene"} <= found
    assert not sorted(found - set(SAMPLE_BY_NAME)), "drop reasons without a troubleshooting entry"
    page = troubleshooting_page()
    assert all(f"| `{name}` |" in page for name in SAMPLE_BY_NAME)
    assert all(f"## {r.name}\n" in page for r in GATE_REASONS) and "genfab select" in page
