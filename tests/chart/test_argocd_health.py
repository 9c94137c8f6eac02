"""Argo CD health checks: each kind's health.lua runs in a real Lua runtime (lupa) on testdata in every state."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import lupa
import pytest
import yaml

from genfab.api.argocd import health_path
from genfab.api.resources import KINDS
from genfab.api.status import Phase, ResourceStatus
from tests.chart.conftest import ROOT

ARGOCD = ROOT / "deploy" / "argocd"
CASES = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]
STATES = {"Healthy", "Progressing", "Degraded", "Suspended"}


def as_lua(lua: Any, value: Any) -> Any:
    """Python YAML data -> Lua tables, the way Argo CD hands `obj` to the script (lists 1-based)."""
    if isinstance(value, dict):
        return lua.table_from({k: as_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([as_lua(lua, v) for v in value])
    return value


def health(kind: str, resource: dict[str, Any]) -> dict[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    script = (ARGOCD / health_path(kind)).read_text()
    lua.globals().obj = as_lua(lua, resource)
    result = lua.execute(script)
    return {"status": result["status"], "message": result["message"]}


def load(path: str, kind: str) -> dict[str, Any]:
    resource: dict[str, Any] = yaml.safe_load((ARGOCD / path).read_text())
    resource["kind"] = kind
    return resource


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health(kind: str, case: dict[str, Any]) -> None:
    expected = dict(case["healthStatus"])
    expected["message"] = expected["message"].replace("DatasetJob", kind)
    assert health(kind, load(case["inputPath"], kind)) == expected


def test_every_health_state_and_every_phase_is_covered() -> None:
    assert {c["healthStatus"]["status"] for c in CASES} == STATES
    phases = {(yaml.safe_load((ARGOCD / c["inputPath"]).read_text()).get("status") or {}).get("phase") for c in CASES}
    assert phases >= {None, *get_args(Phase)}
    assert {Path(p).name for p in (ARGOCD / "testdata").glob("*.yaml")} == {Path(c["inputPath"]).name for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_testdata_statuses_follow_the_status_contract(case: dict[str, Any]) -> None:
    status = yaml.safe_load((ARGOCD / case["inputPath"]).read_text()).get("status")
    if status is not None:
        ResourceStatus.model_validate(status)


def test_a_broken_status_does_not_crash_the_script() -> None:
    resource = load("testdata/running.yaml", "SceneJob")
    resource["status"]["conditions"] = []
    resource["status"].pop("currentStage")
    assert health("SceneJob", resource) == {"status": "Progressing", "message": "SceneJob is Running"}


def test_example_applications_point_at_this_chart() -> None:
    apps = list(yaml.safe_load_all((ARGOCD / "applications.yaml").read_text()))
    assert [a["kind"] for a in apps] == ["Application", "Application"]
    platform, datasets = apps
    assert (ROOT / platform["spec"]["source"]["path"] / "Chart.yaml").exists()
    assert "ServerSideApply=true" in platform["spec"]["syncPolicy"]["syncOptions"]
    assert datasets["spec"]["syncPolicy"]["automated"]["selfHeal"] is True
