#!/usr/bin/env python3
"""Security scan of what the chart puts on a cluster, with checkov (PyPI; not a genfab dependency).

For the default values and every value set in charts/genfab/ci/, it scans two files:
- `helm template -n genfab-system` of the chart;
- the stage Job the operator, configured by that rendering's environment, builds for a relighting
  stage (stage Pods are created by the operator at run time, so a chart scan alone never sees them).
It prints the passed/failed counts and every failed check; the chart README lists the justification
of each one that remains.

    python -m venv /tmp/checkov && /tmp/checkov/bin/pip install checkov
    .venv/bin/python scripts/scan_chart.py --checkov /tmp/checkov/bin/checkov
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "genfab"
HELM = ROOT / ".tools" / "bin" / "helm"
EXAMPLE = ROOT / "examples" / "datasetjob-relighting.yaml"


def value_sets() -> dict[str, Path | None]:
    return {"defaults": None} | {p.name.removesuffix("-values.yaml"): p for p in sorted((CHART / "ci").glob("*.yaml"))}


def render(values: Path | None) -> str:
    cmd = [str(HELM), "template", "genfab", str(CHART), "--namespace", "genfab-system"]
    if values is not None:
        cmd += ["-f", str(values)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def operator_env(rendering: str) -> dict[str, str]:
    deployment = next(d for d in yaml.safe_load_all(rendering) if d and d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def stage_job(env: dict[str, str], namespace: str, stage: str = "segment") -> dict[str, Any]:
    """The Job the operator builds for `stage` of the relighting example under the chart's settings."""
    os.environ.update(env)
    from genfab.api.resources import KINDS
    from genfab.operator.builders import build_job
    from genfab.operator.objects import Owner
    from genfab.operator.settings import OperatorSettings
    from genfab.planner import plan, stage_config

    resource = KINDS["DatasetJob"].model_validate(yaml.safe_load(EXAMPLE.read_text()))
    p = plan(resource)
    s = p.stage(stage)
    owner = Owner("genfab.dev/v1alpha1", "DatasetJob", "relight", namespace, "uid-1")
    return build_job(p, s, stage_config(p, s), resource.spec, 2, 8, owner, OperatorSettings())


def prepared_namespace(rendering: str) -> str:
    """A namespace the chart prepared for stage Pods (it holds the stage ServiceAccount)."""
    return next(d["metadata"]["namespace"] for d in yaml.safe_load_all(rendering)
                if d and d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "genfab-stage")


def checkov(binary: str, path: Path, only: str | None = None) -> dict[str, Any]:
    out = subprocess.run([binary, "-f", str(path), "--framework", "kubernetes", "--compact", "-o", "json"],
                         capture_output=True, text=True, check=False)
    report = json.loads(out.stdout)
    report = report[0] if isinstance(report, list) else report
    results = report.get("results", {})

    def mine(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [c for c in checks if only is None or only in c["resource"]]
    failed = mine(results.get("failed_checks", []))
    return {"passed": len(mine(results.get("passed_checks", []))), "failed": len(failed),
            "checks": sorted({(c["check_id"], c["check_name"], c["resource"]) for c in failed})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--checkov", default="checkov", help="checkov executable")
    args = parser.parse_args()
    failed_any = False
    with tempfile.TemporaryDirectory() as tmp:
        for name, values in value_sets().items():
            rendering = render(values)
            chart_file = Path(tmp) / f"{name}-chart.yaml"
            chart_file.write_text(rendering)
            # The Job lands in a namespace the chart prepared, next to the chart's objects (its
            # NetworkPolicy among them), as on a cluster; only the Job's own checks are counted.
            job_file = Path(tmp) / f"{name}-stage-job.yaml"
            job = stage_job(operator_env(rendering), prepared_namespace(rendering))
            job_file.write_text(rendering + "\n---\n" + yaml.safe_dump(job))
            for what, path, only in (("chart", chart_file, None), ("stage Job", job_file, job["metadata"]["name"])):
                result = checkov(args.checkov, path, only)
                print(f"{name:11s} {what:9s} passed {result['passed']:3d}  failed {result['failed']:2d}")
                for check_id, check_name, resource in result["checks"]:
                    print(f"    {check_id:12s} {resource:45s} {check_name}")
                failed_any |= result["failed"] > 0
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main())
