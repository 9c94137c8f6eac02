"""genfab's operator and cv images, built with podman, started as a cluster starts them: uid 10001, a
read-only root, /tmp as the only writable place, no network; the operator's command line, its
reconcile loop against an API server, and one real stage of the cv image run as the Pod genfab's Job
builder makes."""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from genfab.contract.names import WAITING_FILE
from genfab.operator.builders import waiting_probe
from tests.images import podman
from tests.images.podman import LOCKED

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("family", ["operator", "cv"])
def test_runs_as_10001_with_a_read_only_root_and_tmp_alone_writable(family: str,
                                                                    request: pytest.FixtureRequest) -> None:
    image = request.getfixturevalue(f"{family}_image")
    user = podman.podman("image", "inspect", "--format", "{{.Config.User}}", image, check=True).stdout.strip()
    assert user == "10001:10001"
    probe = "id -u; id -g; touch /opt/x 2>/dev/null && echo root-writable; touch /tmp/y && echo tmp-writable"
    if family != "operator":  # a streaming worker's readiness probe, as the builder writes it, in the image
        ready = shlex.join(waiting_probe()["exec"]["command"])
        probe += (f"; {ready} && echo ready; touch {WAITING_FILE}; {ready} || echo not-ready-while-waiting")
    out = podman.podman("run", "--rm", *LOCKED, "--tmpfs", "/tmp:rw,mode=1777", "--entrypoint", "sh", image, "-c",
                        probe)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["10001", "10001", "tmp-writable", *(
        ["ready", "not-ready-while-waiting"] if family != "operator" else [])]


def test_operator_help_and_one_line_refusal_without_a_cluster(operator_image: str) -> None:
    help_ = podman.podman("run", "--rm", *LOCKED, "--tmpfs", "/tmp", operator_image, "--help")
    assert help_.returncode == 0 and "Usage: python -m genfab.operator" in help_.stdout
    bare = podman.podman("run", "--rm", *LOCKED, "--tmpfs", "/tmp", operator_image)
    lines = (bare.stdout + bare.stderr).strip().splitlines()
    assert bare.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("genfab operator: no Kubernetes access") and "Traceback" not in bare.stderr


@pytest.mark.parametrize(("family", "modules"), [
    ("operator", "kopf, kubernetes, genfab.operator.main"),
    ("cv", "cv2, albumentations, openai, genfab.stages.runtime, genfab.stages.relighting"),
])
def test_imports_reach_for_no_network(family: str, modules: str, request: pytest.FixtureRequest) -> None:
    """With no network at all, the image's imports are quick and print nothing (albumentations' update
    check is off: NO_ALBUMENTATIONS_UPDATE in the image)."""
    image = request.getfixturevalue(f"{family}_image")
    started = time.monotonic()
    out = podman.podman("run", "--rm", *LOCKED, "--tmpfs", "/tmp", "--entrypoint", "python", image, "-c",
                        f"import {modules}")
    assert out.returncode == 0 and out.stdout == "" and out.stderr == "", out.stderr
    assert time.monotonic() - started < 60


# -- the operator image reconciling ----------------------------------------------------------------------

@contextlib.contextmanager
def operator_container(image: str, kubeconfig: Path, shared: Path) -> Iterator[tuple[str, int]]:
    """The operator image as the chart's Deployment runs it; host network, for the API server on loopback."""
    from tests.emulator.harness import free_port

    name, health = f"genfab-operator-{os.getpid()}-{time.monotonic_ns()}", free_port()
    started = podman.podman(
        "run", "-d", "--name", name, "--network", "host", "--read-only", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--tmpfs", "/tmp:rw,mode=1777",
        "-v", f"{kubeconfig}:/etc/genfab/kubeconfig:ro", "-e", "KUBECONFIG=/etc/genfab/kubeconfig",
        "-v", f"{shared}:{shared}", "-e", f"GENFAB_FILE_PREFIXES={json.dumps([str(shared)])}",
        "-e", "GENFAB_PROGRESS_SECONDS=0.2", "-e", "GENFAB_RESYNC_SECONDS=2",
        image, "--liveness", f"http://127.0.0.1:{health}/healthz", "--metrics-port", str(free_port()))
    assert started.returncode == 0, started.stderr
    try:
        yield name, health
    finally:
        logs = podman.podman("logs", name)
        podman.podman("rm", "-f", "-t", "5", name)
        print((logs.stdout + logs.stderr)[-6000:])  # shown when the test fails


@pytest.fixture()
def shared(tmp_path: Path) -> Iterator[Path]:
    """A folder the operator container (uid 10001) and this process both write: the shared volume."""
    old = os.umask(0)
    tmp_path.chmod(0o777)
    try:
        yield tmp_path
    finally:
        os.umask(old)


@pytest.mark.parametrize("server", ["emulator", "real"])
def test_operator_image_reconciles_a_scenejob_to_succeeded(operator_image: str, shared: Path, server: str) -> None:
    from tests.emulator.conftest import make_scenejob
    from tests.emulator.harness import Emulator
    from tests.emulator.kubelet import Behaviour

    emulator = Emulator().start()
    emulator.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
    with contextlib.ExitStack() as stack:
        stack.callback(emulator.stop)
        doc = make_scenejob(shared, samples=3)
        if server == "emulator":
            kubeconfig = emulator.kubeconfig(shared / "kubeconfig")
            apply, status = (lambda: emulator.apply(doc)), (lambda: emulator.status("SceneJob", *names(doc)))
        else:
            apply, status, kubeconfig = _on_the_real_server(stack, emulator, doc, shared)
        kubeconfig.chmod(0o644)
        name, health = stack.enter_context(operator_container(operator_image, kubeconfig, shared))
        emulator.wait("the operator container's liveness", lambda: _healthy(health), timeout=90, interval=0.5)
        apply()
        last: list[dict[str, Any]] = [{}]

        def succeeded() -> Any:
            last[0] = s = status()
            return s.get("phase") == "Succeeded" and s
        try:
            st = emulator.wait("Succeeded", succeeded, timeout=90)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status: {last[0]}") from None
        assert st["progress"] == "3/3" and [s["phase"] for s in st["stages"]] == ["Succeeded"] * 3
        # The operator in the image wrote the run summary into the shared output.
        summary = json.loads((shared / "out" / "batch_summary.json").read_text())
        assert summary and podman.podman("exec", name, "id", "-u").stdout.strip() == "10001"


def names(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["metadata"]["name"], doc["metadata"]["namespace"]


def _healthy(port: int) -> bool:
    import urllib.request
    with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
        return bool(r.status == 200)
    return False


def _on_the_real_server(stack: contextlib.ExitStack, emulator: Any, doc: dict[str, Any], shared: Path) -> Any:
    from tests.realserver import server as real
    from tests.realserver.requests import path_of
    from tests.realserver.split import SplitProxy

    if not real.available():
        if os.environ.get("GENFAB_REQUIRE_REAL_APISERVER") == "1":
            pytest.fail("the real CRD API server is not built (scripts/real_apiserver.sh)")
        pytest.skip("the real CRD API server is not built here (scripts/real_apiserver.sh)")
    apiserver = stack.enter_context(real.running(shared / "apiserver"))
    assert {a["code"] for a in real.install_crds(apiserver).values()} == {201}
    proxy = SplitProxy(apiserver, emulator).start()
    stack.callback(proxy.stop)
    name, ns = names(doc)

    def apply() -> None:
        emulator.prepare_namespace(ns)
        assert apiserver.request("POST", path_of("SceneJob", ns=ns), doc).status_code == 201

    def status() -> dict[str, Any]:
        return dict(apiserver.request("GET", path_of("SceneJob", name, ns=ns)).json().get("status") or {})
    return apply, status, proxy.kubeconfig(shared / "kubeconfig")


# -- the cv image running a stage --------------------------------------------------------------------------

def test_cv_image_runs_relightings_albedo_as_the_pod_genfabs_builder_makes(cv_image: str, shared: Path) -> None:
    """The relighting example runs on this machine (`genfab run`); then its albedo stage's outputs are
    removed and the stage runs again in the cv image, as the Pod of the Job the operator would create:
    same outputs byte for byte, written by uid 10001, with their commit markers."""
    from genfab.api import parse_resource
    from genfab.contract.names import shard_count
    from genfab.operator.builders import build_configmap, build_job
    from genfab.operator.objects import Owner
    from genfab.operator.settings import OperatorSettings
    from genfab.planner import plan, stage_config

    doc = yaml.safe_load((REPO / "examples" / "datasetjob-relighting.yaml").read_text())
    doc["spec"]["output"] = f"file://{shared}/out"
    doc["spec"]["relighting"]["input"]["uri"] = f"file://{shared}/portraits"
    shutil.copytree(REPO / "examples" / "data" / "portraits", shared / "portraits")
    (shared / "job.yaml").write_text(yaml.safe_dump(doc))
    ran = subprocess.run([sys.executable, "-m", "genfab.cli.main", "run", str(shared / "job.yaml")],
                         capture_output=True, text=True, timeout=300, cwd=shared)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    for path in [shared / "out", *(shared / "out").rglob("*")]:  # as if the earlier stages ran in Pods (uid 10001)
        os.chown(path, 10001, 10001, follow_symlinks=False)
    albedo = shared / "out" / "data" / "stage_2"
    host = shared / "host-albedo"
    shutil.copytree(albedo, host)
    shutil.rmtree(albedo)

    resource = parse_resource(doc)
    p = plan(resource)
    stage = p.stage("albedo")
    samples = 4
    shards = shard_count(samples, resource.spec.shard_size or samples)
    settings = OperatorSettings(images={"cv": cv_image})
    owner = Owner("genfab.dev/v1alpha1", "DatasetJob", p.name, "lab", "uid-1")
    cfg = stage_config(p, stage)
    job = build_job(p, stage, cfg, resource.spec, shards, samples, owner, settings)
    configmap = build_configmap(p, stage, cfg, owner)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == cv_image
    for index in range(shards):
        out = podman.run_pod(job, configmap, index, shared=[shared])
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    made = sorted(p.name for p in albedo.glob("*.png"))
    assert made == sorted(p.name for p in host.glob("*.png")) and len(made) == samples
    for name in made:
        assert filecmp.cmp(albedo / name, host / name, shallow=False), name
        assert (albedo / name).stat().st_uid == 10001
    markers = [sorted(m.name for m in (folder / "_markers").iterdir()) for folder in (albedo, host)]
    assert markers[0] == markers[1]


def test_cv_image_writes_a_big_runs_per_sample_records_as_the_records_job_makes(cv_image: str,
                                                                                shared: Path) -> None:
    """The operator's records Job (`build_records_job`) run as its Pod: the cv image reads the stage's
    shard reports, writes `dropped_samples.csv` and points the summary at it, as uid 10001."""
    from genfab.api import parse_resource
    from genfab.inventory import FailedSample, ShardReport, write_report
    from genfab.operator.builders import build_records_job
    from genfab.operator.objects import Owner
    from genfab.operator.settings import OperatorSettings
    from genfab.planner import plan
    from genfab.sequencing.records import records_request
    from genfab.storage.local import FileStorage

    doc = yaml.safe_load((REPO / "examples" / "datasetjob-relighting.yaml").read_text())
    doc["spec"]["output"] = f"file://{shared}/out"
    resource = parse_resource(doc)
    p = plan(resource)
    stage = p.stage("segment")
    run = FileStorage(f"file://{shared}/out", shared / "out")
    for i in range(3):
        write_report(run, ShardReport("segment", stage.config_hash, i, 3, state="succeeded", succeeded=[f"p{i}"],
                                      failed=[FailedSample(f"q{i}", "EmptyMask", "nobody found")]))
    run.write_bytes("_genfab/summary.json", json.dumps({"name": p.name, "droppedSamplesCsv": None,
                                                        "perSampleRecords": "written by the records job"}).encode())
    for path in [shared / "out", *(shared / "out").rglob("*")]:
        os.chown(path, 10001, 10001, follow_symlinks=False)
    request = records_request(p, "PartiallySucceeded", "2026-11-27T12:00:00Z").model_dump_json(by_alias=True)
    owner = Owner("genfab.dev/v1alpha1", "DatasetJob", p.name, "lab", "uid-1")
    job = build_records_job(p, request, resource.spec, owner, OperatorSettings(images={"cv": cv_image}))
    out = podman.run_pod(job, {"metadata": {"name": ""}, "data": {}}, 0, shared=[shared])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "genfab records: DatasetJob/" in out.stderr and "3 dropped sample(s) recorded" in out.stderr
    lines = (shared / "out" / "_genfab" / "dropped_samples.csv").read_text().splitlines()
    assert lines == ["stage,sample_id,reason,message", *(f"segment,q{i},EmptyMask,nobody found" for i in range(3))]
    summary = json.loads((shared / "out" / "_genfab" / "summary.json").read_text())
    assert summary["droppedSamplesCsv"].endswith("/_genfab/dropped_samples.csv") and "perSampleRecords" not in summary
    assert (shared / "out" / "_genfab" / "dropped_samples.csv").stat().st_uid == 10001
