"""Bad input through the real `genfab` CLI (a subprocess, as a user runs it): each case ends with the
exit code the README promises and one clear line naming the file, field or URI; never a traceback,
never a silent success, nothing written outside the output, no temporary folder left behind."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, load_example
from tests.storage.ledger import genfab, images, ledger_job, write

PORTRAITS = ROOT / "examples" / "data" / "portraits"
INVALID_SPEC, CANNOT_START = 1, 2


@dataclass(frozen=True)
class Case:
    id: str
    command: str
    """validate, plan or run."""
    setup: Callable[[Path], list[str]]
    """Writes what the case needs under the folder and returns the CLI arguments after the command."""
    code: int
    says: tuple[str, ...]
    """Texts the stderr line must contain (the file, field or URI and what is allowed)."""
    lines: int | None = 1
    """How many lines stderr has (None: not checked; one per error for `validate`)."""
    outputs: tuple[str, ...] = field(default=("out",))
    """What the case may create in its folder besides what `setup` wrote."""
    env: Callable[[Path], dict[str, str]] = lambda folder: {}
    """Environment the command runs with (given the folder)."""






def relighting(folder: Path, mutate: Callable[[dict[str, Any]], None] = lambda d: None) -> Path:
    doc = copy.deepcopy(load_example("datasetjob-relighting.yaml"))
    doc["spec"]["output"] = f"file://{folder}/out"
    doc["spec"]["relighting"]["input"]["uri"] = f"file://{PORTRAITS}"
    mutate(doc)
    return write(folder, "job.yaml", yaml.safe_dump(doc))


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node[key]
        node[last] = value
    return mutate




def empty_folder(folder: Path) -> Path:
    (folder / "in").mkdir()
    return folder / "in"


def dangling(folder: Path) -> Path:
    """An input folder whose one entry is a link to nothing (no object: as a bucket would list it)."""
    (folder / "in").mkdir()
    (folder / "in" / "gone.png").symlink_to(folder / "nowhere.png")
    return folder / "in"


def tiny_scaffold(folder: Path) -> Path:
    """worldexplorer's scaffold where torch cannot be imported (a module of that name that says so)."""
    write(folder, "shadow/torch/__init__.py", "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    doc = copy.deepcopy(load_example("scenejob-worldexplorer-tiny.yaml"))
    doc["spec"]["output"] = f"file://{folder}/out"
    doc["spec"]["input"]["datasetUri"] = f"file://{PORTRAITS}"
    from genfab.api import parse_resource
    from genfab.planner import plan

    for stage in plan(parse_resource(doc)).stages:  # the models are there (as folders): the import is what fails
        for model in stage.required_models:
            write(folder, f"genfab-models/{model}/config.json", "{}\n")
    return write(folder, "job.yaml", yaml.safe_dump(doc))


ALIAS_BOMB = "\n".join(["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
                       + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
                          for i in range(1, 12)])
TUNING_RUN = {"apiVersion": "genfab.dev/v1alpha1", "kind": "TuningRun", "metadata": {"name": "tr1"},
              "spec": {"trainer": "difix", "baseModel": "s3://models/difix", "runName": "r1",
                       "output": "file://./trout", "dataset": {"datasetJobRef": "data1"},
                       "customStages": [{"name": "train", "image": "x:1", "command": ["python", "-c", "pass"]}]}}
EXAMPLE_TEXT = (ROOT / "examples" / "datasetjob-relighting.yaml").read_text()

CASES = [
    Case("missing-input-folder", "run", lambda f: [str(ledger_job(f, f / "no" / "such"))], 1,
         ("genfab run: input of stage ", "no/such: no such folder"), outputs=()),
    Case("missing-input-folder-validate", "validate", lambda f: [str(ledger_job(f, f / "no" / "such"))], 1,
         ("job.yaml: input of stage ", "no/such: no such folder"), outputs=()),
    Case("empty-input-folder-plan", "plan", lambda f: [str(ledger_job(f, empty_folder(f)))], 1,
         ("genfab plan: input of stage ", ": the folder is empty"), outputs=()),
    Case("input-holds-no-image", "plan", lambda f: [str(ledger_job(f, images(f, {"notes.txt": b"x"})))], 1,
         ("genfab plan: input of stage ", "none of its 1 file(s) has a suffix that is read", "*.png"), outputs=()),
    Case("missing-input-parent-exists", "run", lambda f: [str(ledger_job(f, f / "inputs"))], 1,
         ("genfab run: input of stage ", "/inputs: no such folder"), outputs=()),
    Case("output-is-a-file", "run",
         lambda f: [str(ledger_job(f, images(f, {"a.png": b"x"}))), "--out", f"file://{write(f, 'afile.txt', '')}"],
         CANNOT_START, ("afile.txt", "Not a directory"), outputs=()),
    Case("output-cannot-be-created", "run",
         lambda f: [str(ledger_job(f, images(f, {"a.png": b"x"}))), "--out", "file:///proc/genfab-x"],
         CANNOT_START, ("file:///proc/genfab-x",), outputs=()),
    Case("not-a-text-file", "validate", lambda f: [str(write(f, "image.png", bytes(range(256)) * 4))],
         INVALID_SPEC, ("image.png", "not a UTF-8 text file"), outputs=()),
    Case("kind-is-a-list", "validate", lambda f: [str(write(f, "k.yaml", "apiVersion: x\nkind: [a, b]\n"))],
         INVALID_SPEC, ("k.yaml", "kind: unknown kind", "allowed: SceneJob"), outputs=()),
    Case("kind-is-a-mapping", "plan", lambda f: [str(write(f, "k.yaml", "kind: {a: 1}\n"))],
         INVALID_SPEC, ("kind: unknown kind",), outputs=()),
    Case("not-a-mapping", "validate", lambda f: [str(write(f, "l.yaml", "- a\n- b\n"))],
         INVALID_SPEC, ("(document): expected a mapping",), outputs=()),
    Case("empty-file", "run", lambda f: [str(write(f, "e.yaml", "# nothing\n"))],
         INVALID_SPEC, ("e.yaml", "no YAML documents"), outputs=()),
    Case("alias-bomb", "plan", lambda f: [str(write(f, "bomb.yaml", EXAMPLE_TEXT.replace(
        "    seed: 0", "    seed: 0\n  customStages:\n  - name: extra\n    image: x:1\n    config:\n"
        + "\n".join("      " + line for line in ALIAS_BOMB.splitlines()))))],
        INVALID_SPEC, ("bomb.yaml", "YAML aliases", "line"), outputs=()),
    Case("duplicate-keys", "validate", lambda f: [str(write(f, "d.yaml", EXAMPLE_TEXT + "kind: SceneJob\n"))],
         INVALID_SPEC, ("d.yaml", "duplicate key 'kind'"), outputs=()),
    Case("deep-nesting", "validate", lambda f: [str(write(f, "deep.yaml", "spec: " + "[" * 5000 + "]" * 5000))],
         INVALID_SPEC, ("nested deeper than",), outputs=()),
    Case("too-large-file", "validate", lambda f: [str(write(f, "big.yaml", "# " + "x" * (4 << 20)))],
         INVALID_SPEC, ("big.yaml", "too large"), outputs=()),
    Case("blend-above-1", "validate",
         lambda f: [str(relighting(f, _set("spec.relighting.albedo.blend", {"min": -0.5, "max": 2})))],
         INVALID_SPEC, ("spec.relighting.albedo.blend",), lines=2, outputs=()),
    Case("ambient-above-1", "run",
         lambda f: [str(relighting(f, _set("spec.relighting.degradation.softShading.ambient",
                                           {"min": 0.5, "max": 5})))],
         INVALID_SPEC, ("spec.relighting.degradation.softShading.ambient.max", "less than or equal to 1"),
         outputs=()),
    Case("custom-config-too-large", "validate",
         lambda f: [str(relighting(f, _set("spec.customStages", [{"name": "extra", "image": "x:1",
                                                                  "config": {"blob": "x" * 70000}}])))],
         INVALID_SPEC, ("spec.customStages[0].config", "at most 64 KiB"), outputs=()),
    Case("several-documents", "run",
         lambda f: [str(write(f, "two.yaml", EXAMPLE_TEXT + "\n---\n" + EXAMPLE_TEXT))],
         INVALID_SPEC, ("two.yaml", "2 documents", "one resource"), outputs=()),
    Case("name-over-40", "validate",
         lambda f: [str(relighting(f, _set("metadata.name", "n" * 41)))],
         INVALID_SPEC, ("metadata.name",), outputs=()),
    Case("drops-stop-the-job", "run",
         lambda f: [str(ledger_job(f, images(f, {"a.png": b"ok", "b.png": b"FAIL", "c.png": b"ok"}),
                                   onlyStages=["segment", "albedo"]))],
         1, ("stage segment dropped 1 of 3", "continueOnError: true", "2 good ones")),
    Case("storage-secret-not-here", "run",
         lambda f: [str(ledger_job(f, images(f, {"a.png": b"x"}), storage={
             "endpoint": "http://127.0.0.1:9", "addressingStyle": "path", "secretRef": {"name": "lab-s3"}})),
             "--out", "s3://lab-data/out"],
         CANNOT_START, ("s3://lab-data/out", "secretRef 'lab-s3'", ".home/.config/genfab/secrets/lab-s3.env"),
         outputs=()),
    Case("storage-secret-incomplete", "run",
         lambda f: [str(ledger_job(f, images(f, {"a.png": b"x"}), storage={"secretRef": {"name": "lab-s3"}})),
                    "--secrets", str(write(f, "secrets/lab-s3.env", "AWS_ACCESS_KEY_ID=a\n").parent)],
         CANNOT_START, ("secret 'lab-s3'", "has no AWS_SECRET_ACCESS_KEY"), outputs=()),
    Case("malformed-ref-option", "run", lambda f: [str(ledger_job(f, images(f, {"a.png": b"x"}))), "--ref", "x"],
         CANNOT_START, ("--ref 'x'", "Kind/name=URI"), outputs=()),
    Case("tuningrun-ref-not-run-here", "run", lambda f: [str(write(f, "tr.yaml", yaml.safe_dump(TUNING_RUN)))],
         CANNOT_START, ("ref:DatasetJob/data1/difix/data.json", "--ref DatasetJob/data1=URI"), outputs=()),
    Case("operator-without-kubeconfig", "operator", lambda f: [], CANNOT_START,
         ("no Kubernetes access", "KUBECONFIG"), outputs=()),
    Case("operator-kubeconfig-not-yaml", "operator", lambda f: write(f, "bad.yaml", "a: [\n") and [],
         CANNOT_START, ("no Kubernetes access", "bad.yaml", "line 2"), outputs=(),
         env=lambda f: {"KUBECONFIG": str(f / "bad.yaml")}),
    Case("run-out-not-a-uri", "run", lambda f: [str(ledger_job(f, images(f, {"a.png": b"x"}))), "--out", "out"],
         CANNOT_START, ("--out: must be a URI of the form s3://... or file://...", "(got 'out')"), outputs=()),
    Case("run-out-system-folder", "run", lambda f: [str(ledger_job(f, images(f, {"a.png": b"x"}))), "--out",
                                                    "file:///etc/genfab"],
         CANNOT_START, ("--out: /etc/genfab is in the system folder /etc",), outputs=()),
    Case("select-out-bad-bucket", "select",
         lambda f: [str(ledger_job(f, images(f, {"a.png": b"x"}))), "--sample", "a", "--gap", "001",
                    "--candidate", "0", "--out", "s3://Bad_Bucket!/x"],
         CANNOT_START, ("--out: S3 bucket 'Bad_Bucket!' is not a valid bucket name",), outputs=()),
    Case("select-out-dot-dot", "select",
         lambda f: [str(ledger_job(f, images(f, {"a.png": b"x"}))), "--sample", "a", "--gap", "001",
                    "--candidate", "0", "--out", "file://../../etc"],
         CANNOT_START, ("--out: file path must not contain '.' or '..' path segments",), outputs=()),
    Case("input-only-a-dangling-link", "run", lambda f: [str(ledger_job(f, dangling(f)))], 1,
         ("genfab run: input of stage ", ": the folder is empty"), outputs=()),
    Case("missing-python-package", "run", lambda f: [str(tiny_scaffold(f))], 1,
         ("stage scaffold:", "missing Python package 'torch' for stage scaffold of pipeline worldexplorer",
          "pip install 'genfab[diffusion]'", "not retried"),
         env=lambda f: {"PYTHONPATH": f"{f / 'shadow'}{os.pathsep}{ROOT}"}),
]




@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_clear_line(case: Case, tmp_path: Path) -> None:
    args = case.setup(tmp_path)
    before = set(tmp_path.iterdir())
    started = time.monotonic()
    result = genfab(tmp_path, case.command, *args, extra=case.env(tmp_path))
    err = result.stderr.strip()
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == case.code, (result.returncode, err, result.stdout[-2000:])
    for text in case.says:
        assert text in err, (text, err)
    if case.command == "validate":  # one verdict a document: a refused one is never also "is valid"
        assert " is valid" not in result.stdout, result.stdout
    if case.lines is not None:
        assert len(err.splitlines()) == case.lines, err
    assert time.monotonic() - started < 60  # nothing runs away (the alias bomb took 50 s and 2.7 GB)
    created = {p.name for p in set(tmp_path.iterdir()) - before} - {".tmp", ".home"}
    assert created <= set(case.outputs), created
    assert not list((tmp_path / ".tmp").iterdir()), "temporary files left behind"


def test_odd_file_names_become_sample_ids_and_keep_their_name(tmp_path: Path) -> None:
    """Spaces and non-ASCII letters never fail the job: each name maps to a valid, deterministic id."""
    names = {"my photo.png": b"a", "café.png": b"b", "ok.png": b"c", "日本.png": b"d"}
    job = ledger_job(tmp_path, images(tmp_path, names))
    result = genfab(tmp_path, "run", str(job))
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (tmp_path / "out" / "data" / "stage_1").glob("*.txt"))
    assert len(written) == 4 and "ok.txt" in written
    assert any(n.startswith("my-photo-") for n in written) and any(n.startswith("cafe-") for n in written)
    assert genfab(tmp_path, "run", str(job)).returncode == 0  # the same ids again: all reused
