"""genfab's API held to Kubernetes' own CRD server: the CRDs are accepted and Established, every
example is created, every schema/CEL refusal the project tests agrees between the in-process checker
(tests/crd_validator.py) and the real server, `kubectl get` columns come from the server's Table form,
and the status subresource, defaulting and pruning behave as genfab assumes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from genfab.api import parse_resource
from genfab.api.crd import build_crd, crd_filename, render_crds
from genfab.api.resources import GROUP, KINDS, PLURALS, VERSION
from tests import crd_validator
from tests.bad_input_cases import CASES, Case
from tests.helpers import load_example
from tests.realserver import server as real
from tests.realserver.requests import NS, create, fresh, path_of

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name for p in (REPO / "examples").glob("*.yaml"))
# -- the CRDs -----------------------------------------------------------------------------------------

def test_every_crd_is_created_and_established(installed: dict[str, Any]) -> None:
    assert sorted(installed) == sorted(crd_filename(k) for k in KINDS)
    for name, answer in installed.items():
        assert answer["code"] == 201, f"{name}: {answer['body'].get('message')}"


def test_the_crds_served_are_genfabs_files_and_the_charts(apiserver: real.RealApiServer, crds: dict[str, Any]) -> None:
    """`genfab crds` output, crds/ and the chart's copy are the same files, and the server holds their spec."""
    for name, text in render_crds().items():
        assert (REPO / "crds" / name).read_text() == text
        assert (REPO / "charts" / "genfab" / "crds" / name).read_text() == text
        ours = yaml.safe_load(text)
        served = apiserver.request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                                   + ours["metadata"]["name"]).json()
        assert served["spec"]["names"] == ours["spec"]["names"] | {"categories": ["genfab"]}
        assert served["spec"]["versions"][0]["additionalPrinterColumns"] == \
            ours["spec"]["versions"][0]["additionalPrinterColumns"]


def test_discovery_lists_the_kinds_with_short_names_and_category(apiserver: real.RealApiServer,
                                                                   crds: dict[str, Any]) -> None:
    found = apiserver.request("GET", f"/apis/{GROUP}/{VERSION}").json()["resources"]
    top = {r["kind"]: r for r in found if "/" not in r["name"]}
    assert sorted(top) == sorted(KINDS)
    for kind, entry in top.items():
        crd = build_crd(kind)
        assert entry["shortNames"] == crd["spec"]["names"]["shortNames"] and entry["categories"] == ["genfab"]
    assert {r["name"] for r in found if r["name"].endswith("/status")} == {f"{PLURALS[k]}/status" for k in KINDS}


# -- examples and the rules ---------------------------------------------------------------------------

@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_is_created(apiserver: real.RealApiServer, crds: dict[str, Any], example: str) -> None:
    doc = fresh(load_example(example))
    resp = create(apiserver, doc)
    assert resp.status_code == 201, resp.json().get("message")
    # What the server stored, defaults applied, is the same resource to genfab.
    stored = resp.json()
    assert parse_resource(stored).spec == parse_resource(doc).spec


def _checker(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(path.lstrip("."), message) for path, message in crd_validator.validate(build_crd(doc["kind"]), doc)]


def _rule_messages(kind: str) -> set[str]:
    out: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            out.update(r["message"] for r in node.get("x-kubernetes-validations", []))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(build_crd(kind))
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_checker_and_real_server_agree(apiserver: real.RealApiServer, crds: dict[str, Any], case: Case) -> None:
    """Each refusal the project tests: refused by both or by neither; the same fields; a CEL rule's
    message word for word. Refusals that are the API server's own (metadata) are the server's alone."""
    doc = load_example(case.example)
    case.mutate(doc)
    doc = fresh(doc) if case.path != "metadata.name" else {**doc, "metadata": {**doc["metadata"], "namespace": NS}}
    ours = _checker(doc)
    resp = create(apiserver, doc)
    theirs = real.causes(resp) if resp.status_code == 422 else []
    assert resp.status_code in (201, 422), resp.text[:500]
    if case.path.startswith("metadata."):  # the server's own object-meta validation, not the CRD's schema
        return _assert_metadata_refusal(case, ours, resp, theirs)
    assert bool(ours) == (resp.status_code == 422), (
        f"checker: {ours or 'accepts'}; real server: {theirs or 'accepts'}")
    assert bool(ours) == case.crd
    rule_messages = _rule_messages(doc["kind"])
    for path, message in ours:
        at_path = [m for f, m in theirs if f == path]
        assert at_path, f"the checker refuses {path} ({message}); the server's fields: {theirs}"
        if message in rule_messages:
            assert any(message in m for m in at_path), f"{path}: the server says {at_path}, the rule {message!r}"
    assert {f for f, _ in theirs} <= {p for p, _ in ours}, f"the server refuses more: {theirs} vs {ours}"


def _assert_metadata_refusal(case: Case, ours: list[tuple[str, str]], resp: Any,
                             theirs: list[tuple[str, str]]) -> None:
    assert resp.status_code == 422, f"the server accepted {case.id}"
    if case.crd:  # genfab's own rule on the name, in the CRD
        assert any(case.message in m for _, m in theirs) and any(case.message in m for _, m in ours), (ours, theirs)
    else:  # Kubernetes' name rules (DNS subdomain): the server's, not the schema's
        assert ours == [] and any(f == "metadata.name" for f, _ in theirs), theirs


def test_unknown_fields_are_pruned_and_genfab_refuses_them(apiserver: real.RealApiServer,
                                                           crds: dict[str, Any]) -> None:
    """The server drops a misspelled field with a warning (kubectl prints it); genfab's own validation,
    which `genfab validate` and the operator run, names it."""
    doc = fresh(load_example("scenejob-vistadream.yaml"))
    doc["spec"]["outptu"] = "s3://genfab-out/x"
    doc["spec"]["vistadream"]["maxResolutoin"] = 512
    resp = create(apiserver, doc)
    assert resp.status_code == 201
    stored = resp.json()
    assert "outptu" not in stored["spec"] and "maxResolutoin" not in stored["spec"]["vistadream"]
    warning = resp.headers.get("Warning", "").replace('\\"', '"')  # kubectl prints these
    assert 'unknown field "spec.outptu"' in warning and 'unknown field "spec.vistadream.maxResolutoin"' in warning
    with pytest.raises(Exception, match="outptu"):
        parse_resource(doc)


def test_every_schema_default_is_accepted_by_the_real_server(apiserver: real.RealApiServer,
                                                             crds: dict[str, Any]) -> None:
    """The server structurally validated each default when it accepted the CRD; the defaulted
    examples above round-trip through genfab. Here: a minimal spec of each kind gets genfab's defaults."""
    minimal = {"SceneJob": "scenejob-vistadream.yaml", "DatasetJob": "datasetjob-relighting.yaml",
               "TuningRun": "tuningrun-difix.yaml"}
    for kind, example in minimal.items():
        doc = fresh(load_example(example))
        resp = create(apiserver, doc)
        assert resp.status_code == 201, resp.text[:300]
        assert parse_resource(resp.json()).spec.model_dump() == parse_resource(doc).spec.model_dump(), kind


# -- what kubectl get shows -----------------------------------------------------------------------------

def test_kubectl_get_columns_come_from_the_servers_table(apiserver: real.RealApiServer, crds: dict[str, Any]) -> None:
    doc = fresh(load_example("scenejob-worldexplorer.yaml"))
    name = doc["metadata"]["name"]
    assert create(apiserver, doc).status_code == 201
    status = {"status": {"phase": "Running", "currentStage": "expansion", "progress": "37/120"}}
    resp = apiserver.request("PATCH", path_of("SceneJob", name, "status"), status,
                             content_type="application/merge-patch+json")
    assert resp.status_code == 200, resp.text[:300]
    table = apiserver.request("GET", path_of("SceneJob") + f"?fieldSelector=metadata.name={name}",
                              accept=real.TABLE).json()
    assert table["kind"] == "Table"
    columns = [c["name"] for c in table["columnDefinitions"]]
    expected = ["Name"] + [c["name"] for c in build_crd("SceneJob")["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns == expected
    (row,) = table["rows"]
    cells = dict(zip(columns, row["cells"], strict=True))
    assert (cells["Name"], cells["Phase"], cells["Stage"], cells["Progress"], cells["Pipeline"]) == (
        name, "Running", "expansion", "37/120", "worldexplorer")
    assert cells["Age"].endswith("s")
    wide = {c["name"]: c["priority"] for c in table["columnDefinitions"]}
    assert wide["Pipeline"] == 1 and wide["Phase"] == 0  # `kubectl get -o wide` adds Pipeline


def test_the_genfab_category_lists_every_kind(apiserver: real.RealApiServer, crds: dict[str, Any]) -> None:
    """`kubectl get genfab` expands the category from discovery: each kind's list answers."""
    for kind in KINDS:
        listed = apiserver.request("GET", f"/apis/{GROUP}/{VERSION}/{PLURALS[kind]}", accept=real.TABLE).json()
        assert listed["kind"] == "Table", kind


# -- the status subresource --------------------------------------------------------------------------

def test_spec_changes_bump_generation_and_status_patches_do_not(apiserver: real.RealApiServer,
                                                                crds: dict[str, Any]) -> None:
    doc = fresh(load_example("datasetjob-relighting.yaml"))
    name = doc["metadata"]["name"]
    created = create(apiserver, doc).json()
    assert created["metadata"]["generation"] == 1
    merge = "application/merge-patch+json"
    status = apiserver.request("PATCH", path_of("DatasetJob", name, "status"),
                               {"status": {"phase": "Running", "observedGeneration": 1}}, content_type=merge).json()
    assert status["metadata"]["generation"] == 1 and status["status"]["phase"] == "Running"
    spec = apiserver.request("PATCH", path_of("DatasetJob", name),
                             {"spec": {"shardSize": 3}, "status": {"phase": "Failed"}}, content_type=merge).json()
    assert spec["metadata"]["generation"] == 2
    assert spec["status"]["phase"] == "Running"  # the main resource ignores status
    same = apiserver.request("PATCH", path_of("DatasetJob", name), {"metadata": {"labels": {"team": "a"}}},
                             content_type=merge).json()
    assert same["metadata"]["generation"] == 2  # metadata changes are not spec changes
    after = apiserver.request("PATCH", path_of("DatasetJob", name, "status"),
                              {"spec": {"shardSize": 9}, "status": {"observedGeneration": 2}},
                              content_type=merge).json()
    assert after["spec"]["shardSize"] == 3 and after["metadata"]["generation"] == 2  # /status ignores spec


def test_unknown_status_fields_are_pruned_and_the_pruning_check_sees_it(apiserver: real.RealApiServer,
                                                                       crds: dict[str, Any]) -> None:
    """The operator scenarios check every status write against the server's answer (split.missing);
    here that check is shown to catch a field the schema does not declare."""
    from tests.realserver.split import missing

    doc = fresh(load_example("tuningrun-difix.yaml"))
    assert create(apiserver, doc).status_code == 201
    patch = {"status": {"phase": "Running", "training": {"loss": 0.25, "lossy": 1}, "bogus": {"a": 1}}}
    answer = apiserver.request("PATCH", path_of("TuningRun", doc["metadata"]["name"], "status"), patch,
                               content_type="application/merge-patch+json").json()
    assert answer["status"]["phase"] == "Running" and answer["status"]["training"]["loss"] == 0.25
    assert sorted(missing(patch, answer)) == [".status.bogus", ".status.training.lossy"]


def test_what_the_chart_installs_on_this_server_is_accepted(apiserver: real.RealApiServer, crds: dict[str, Any],
                                                           tmp_path: Path) -> None:
    """`helm install`, as far as a CRD server goes: for every value set the chart tier renders, every
    CRD the chart installs is accepted and every object of a kind they define is created (the chart installs
    genfab's three, identical to those served; HA elects on a core Lease, with no CRD of its own)."""
    from tests.chart.conftest import VALUE_SETS, render
    from tests.helpers import helm_binary

    helm = helm_binary()
    served = {a["name"] for a in crds.values()}
    created = 0
    for name, values in {**VALUE_SETS, "ha-namespaced": {"operator": {
            "ha": {"enabled": True}, "replicas": 2, "watchNamespaces": ["lab-a"]}}}.items():
        folder = tmp_path / name
        folder.mkdir()
        docs = render(helm, values, folder, "--include-crds")
        for crd in (d for d in docs if d["kind"] == "CustomResourceDefinition"):
            if crd["metadata"]["name"] in served:
                continue
            resp = apiserver.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
            assert resp.status_code == 201, f"{name}: {crd['metadata']['name']}: {resp.json().get('message')}"
            served.add(crd["metadata"]["name"])
            apiserver.wait(crd["metadata"]["name"], lambda n=crd["metadata"]["name"]: real.established(apiserver, n))
        for obj in (d for d in docs if d["apiVersion"].split("/")[0] == GROUP):
            plural = obj["kind"].lower() + "s"
            ns = obj["metadata"].get("namespace")
            where = f"/apis/{obj['apiVersion']}" + (f"/namespaces/{ns}" if ns else "") + f"/{plural}"
            resp = apiserver.wait(f"{obj['kind']} created", lambda w=where, o=obj: (
                r := apiserver.request("POST", w, o)).status_code != 404 and r)
            assert resp.status_code == 201, f"{name}: {obj['kind']}: {resp.json().get('message')}"
            assert apiserver.request("DELETE", f"{where}/{obj['metadata']['name']}").status_code == 200
            created += 1
    assert served == {a["name"] for a in crds.values()} and created == 0


@pytest.mark.parametrize("fields", [
    {"executionMode": None},
    {"executionMode": None, "executionName": "mug"},
    {"executionMode": "byName", "executionName": None},
    {"executionMode": "new", "executionName": None},
], ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
def test_a_null_execution_mode_reads_the_same_to_the_server_and_to_genfab(apiserver: real.RealApiServer,
                                                                          crds: dict[str, Any],
                                                                          fields: dict[str, Any]) -> None:
    """`executionMode: null` (and `executionName: null`), as `kubectl apply` sends what a YAML file
    leaves empty: the server and `genfab validate` both accept, or both refuse."""
    from genfab.api.crd import as_stored

    doc = fresh(load_example("datasetjob-reference-object.yaml"))
    doc["spec"]["referenceObject"].update(fields)
    resp = create(apiserver, doc)
    assert resp.status_code in (201, 422), resp.text[:500]
    try:
        parse_resource(as_stored(copy.deepcopy(doc)))
        genfab_accepts = True
    except ValueError:
        genfab_accepts = False
    assert genfab_accepts == (resp.status_code == 201), (fields, resp.text[:800])
