"""The release workflow (.github/workflows/release.yml): it builds every image images/build.sh builds,
through images/build.sh itself, and its chart steps (lint, package at the tag's version) run here
with the real helm. Nothing here can reach the hosting's runners; the file is checked, not run."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import yaml

from genfab.api.families import FAMILIES
from tests.chart.conftest import CHART, run_helm
from tests.helpers import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def workflow() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(WORKFLOW.read_text())


def test_every_image_is_built_and_pushed_through_the_build_script_on_a_version_tag() -> None:
    flow = workflow()
    assert flow[True]["push"]["tags"] == ["v*.*.*"]  # YAML 1.1 reads the key `on` as true
    images = flow["jobs"]["images"]
    assert sorted(images["strategy"]["matrix"]["image"]) == sorted(("operator", *FAMILIES))
    runs = [s["run"] for s in images["steps"] if "run" in s]
    build = [r for r in runs if "images/build.sh" in r]
    assert len(build) == 1 and "--only \"${{ matrix.image }}\"" in build[0] and "--push" in build[0]
    assert "--tag \"${GITHUB_REF_NAME#v}\"" in build[0]
    assert flow["permissions"] == {"contents": "read", "packages": "write"}
    assert flow["jobs"]["chart"]["needs"] == "images"


def test_the_chart_steps_lint_and_package_at_the_tags_version(helm: Path, tmp_path: Path) -> None:
    steps = "\n".join(s.get("run", "") for s in workflow()["jobs"]["chart"]["steps"])
    assert "helm lint charts/genfab" in steps and "helm push" in steps
    version = "0.2.0"  # what `v0.2.0` gives through ${GITHUB_REF_NAME#v}
    lint = run_helm(helm, "lint", str(CHART))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    packed = run_helm(helm, "package", str(CHART), "--version", version, "--app-version", version,
                      "--destination", str(tmp_path))
    assert packed.returncode == 0, packed.stderr
    archive = tmp_path / f"genfab-{version}.tgz"
    with tarfile.open(archive) as tar:
        chart = yaml.safe_load(tar.extractfile("genfab/Chart.yaml").read())  # type: ignore[union-attr]
        names = tar.getnames()
    assert (chart["version"], chart["appVersion"]) == (version, version)
    assert {f"genfab/crds/{p.name}" for p in (ROOT / "crds").glob("*.yaml")} <= set(names)
    assert re.search(r'helm package charts/genfab --version "\$version" --app-version "\$version"', steps)
