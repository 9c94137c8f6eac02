"""Adding a pipeline touches only its own files: `tests/toy_pipeline/` (one module, one stage) plans,
runs end to end with `genfab run`, renders a valid Job and joins the DatasetJob CRD, with nothing
else edited. Loaded the way a lab's own package would be, through `GENFAB_PIPELINES`."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml

from genfab.storage import open_storage
from tests.helpers import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "GENFAB_PIPELINES": "tests.toy_pipeline.pipeline"}

RENDER = """
import json, sys
from genfab.api import parse_resource
from genfab.api.crd import render_crds
from genfab.operator.builders import build_job
from genfab.operator.objects import Owner
from genfab.operator.settings import OperatorSettings
from genfab.planner import plan, stage_config
import yaml
resource = parse_resource(yaml.safe_load(open(sys.argv[1])))
p = plan(resource, {"input": 3})
stage = p.stages[0]
settings = OperatorSettings(images={f: f"registry.test/genfab-{f}:1" for f in ("cv", "scene", "segment", "diffusion")})
owner = Owner("genfab.dev/v1alpha1", "DatasetJob", p.name, "lab", "uid-1")
job = build_job(p, stage, stage_config(p, stage), resource.spec, p.stages[0].shards, 3, owner, settings)
print(json.dumps({"job": job, "crd": yaml.safe_load(render_crds()["genfab.dev_datasetjobs.yaml"])}))
"""


def resource(tmp_path: Path) -> Path:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(3):
        (inputs / f"file_{i}.txt").write_text(f"content {i}\n")
    doc = {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "sums"},
           "spec": {"type": "checksums", "output": f"file://{tmp_path}/out",
                    "checksums": {"uri": f"file://{inputs}", "algorithm": "blake2b"}}}
    path = tmp_path / "sums.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def genfab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genfab.cli.main", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=120)


def test_a_pipeline_declared_only_under_tests_plans_runs_and_renders(tmp_path: Path) -> None:
    path = resource(tmp_path)
    planned = genfab("plan", "--json", "--input-samples", "3", str(path), cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    stages = json.loads(planned.stdout)["stages"]
    assert [(s["name"], s["family"], s["shards"], s["output_uri"]) for s in stages] == [
        ("digest", "cv", 2, f"file://{tmp_path}/out/digests")]
    assert "note:" not in planned.stderr  # it runs today

    ran = genfab("run", str(path), "--workers", "2", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = open_storage(f"file://{tmp_path}/out")
    for i in range(3):
        expected = hashlib.blake2b(f"content {i}\n".encode()).hexdigest()
        assert out.read_bytes(f"digests/file_{i}.txt").decode().strip() == expected
    status = json.loads(out.read_bytes("_genfab/status.json"))["status"]
    assert status["phase"] == "Succeeded" and status["stages"][0]["samples"]["succeeded"] == 3

    rendered = subprocess.run([sys.executable, "-c", RENDER, str(path)], env=ENV, capture_output=True, text=True,
                              timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    docs = json.loads(rendered.stdout)
    job = docs["job"]
    kubernetes_validate.validate(job, "1.35", strict=True)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "genfab.stages", "digest"]
    assert container["image"] == "registry.test/genfab-cv:1" and job["spec"]["completions"] == 2
    spec = docs["crd"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "checksums" in spec["properties"]["type"]["enum"] and "checksums" in spec["properties"]


def test_the_checked_in_crds_know_only_the_built_in_pipelines() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "genfab.dev_datasetjobs.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["type"]["enum"] == ["relighting", "reference-object", "difix"]
