"""Chart tier: the real helm binary (fetched by scripts/fetch_tools.py into .tools/bin)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, helm_binary

CHART = ROOT / "charts" / "genfab"

VALUE_SETS: dict[str, dict[str, Any]] = {"defaults": {}} | {
    path.name.removesuffix("-values.yaml"): yaml.safe_load(path.read_text())
    for path in sorted((CHART / "ci").glob("*-values.yaml"))}
"""The value sets the chart tier renders: the defaults and every file in charts/genfab/ci/ (helm
chart-testing's convention; scripts/scan_chart.sh scans the same files)."""


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()


def run_helm(helm: Path, *args: str, values: dict[str, Any] | None = None, tmp: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
    cmd = [str(helm), *args]
    if values:
        assert tmp is not None
        path = tmp / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        cmd += ["-f", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def render(helm: Path, values: dict[str, Any], tmp: Path, *extra: str) -> list[dict[str, Any]]:
    out = run_helm(helm, "template", "genfab", str(CHART), "--namespace", "genfab-system", *extra,
                   values=values, tmp=tmp)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="session")
def rendered(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Every value set rendered once (with CRDs) for the whole tier."""
    return {name: render(helm, values, tmp_path_factory.mktemp(name), "--include-crds")
            for name, values in VALUE_SETS.items()}
