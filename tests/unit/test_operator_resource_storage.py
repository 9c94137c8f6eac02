"""The storage the operator opens for a resource is the one its stage Pods reach: the resource's
`spec.storage` as last watched, else the chart's default (`OperatorSettings.storage_for`, the rule the
Pods' environment follows too), validated by the API's own model."""

from __future__ import annotations

from typing import Any

import pytest

from genfab.api.common import Storage
from genfab.api.resources import parse_resource
from genfab.operator.builders import build_job
from genfab.operator.objects import Key, Owner
from genfab.operator.settings import OperatorSettings
from genfab.operator.storage_access import ResourceStorage
from genfab.planner import plan, stage_config
from genfab.storage import StorageError
from tests.unit.shared import SETTINGS

KEY: Key = ("DatasetJob", "lab", "d")
OWNER = Owner("genfab.dev/v1alpha1", "DatasetJob", "d", "lab", "uid")
DEFAULT = Storage.model_validate({"endpoint": "http://minio.lab:9000", "secretRef": {"name": "lab-s3"}})


class Access:
    """Records what it was asked to open (the real one reads the Secret and builds a boto3 client)."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, Owner, Storage | None]] = []

    def open(self, uri: str, owner: Owner, storage: Storage | None) -> str:
        self.opened.append((uri, owner, storage))
        return uri


def resource_storage(spec: dict[str, Any] | None, default: Storage | None = DEFAULT) -> ResourceStorage:
    settings = OperatorSettings(default_storage=default)
    return ResourceStorage(Access(), lambda key: spec if key == KEY else None, settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(("spec", "default", "expected"), [
    (None, DEFAULT, DEFAULT),                                          # not watched yet: the default
    ({"pipeline": "relighting"}, DEFAULT, DEFAULT),                    # no spec.storage: the default
    ({"storage": {"endpoint": "http://s3.team:9000"}}, DEFAULT, Storage(endpoint="http://s3.team:9000")),
    ({"storage": {}}, DEFAULT, Storage()),                             # its own: AWS, ambient credentials
    ({"pipeline": "relighting"}, None, None),                          # no default either: ambient, AWS
])
def test_the_resources_storage_else_the_default(spec: dict[str, Any] | None, default: Storage | None,
                                                expected: Storage | None) -> None:
    assert resource_storage(spec, default).spec_storage(KEY) == expected


def test_it_is_opened_with_that_storage_for_that_owner() -> None:
    storage = resource_storage({"storage": {"endpoint": "http://s3.team:9000", "secretRef": {"name": "team"}}})
    assert storage.open(KEY, "s3://team/run", OWNER) == "s3://team/run"
    assert storage.access.opened == [  # type: ignore[attr-defined]
        ("s3://team/run", OWNER, Storage.model_validate({"endpoint": "http://s3.team:9000",
                                                         "secretRef": {"name": "team"}}))]


def test_a_storage_the_api_refuses_is_a_storage_error_in_one_line() -> None:
    with pytest.raises(StorageError, match=r"^spec\.storage: ") as caught:
        resource_storage({"storage": {"endpoint": "ftp://nowhere"}}).spec_storage(KEY)
    assert "\n" not in str(caught.value)


def test_the_pods_environment_follows_the_same_rule() -> None:
    """`storage: {}` is the resource's own storage (AWS, ambient credentials) for its Pods and for the
    operator alike, never the chart's default; without `storage` both take the default."""
    settings = OperatorSettings(images=SETTINGS.images, default_storage=DEFAULT)

    def pod_endpoint(**extra: Any) -> str | None:
        r = parse_resource({
            "apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "relit"},
            "spec": {"type": "relighting", "output": "s3://lab-out/relit",
                     "relighting": {"input": {"uri": "s3://lab-in/portraits"}}, **extra}})
        p = plan(r)
        stage = p.stage("segment")
        env = build_job(p, stage, stage_config(p, stage), r.spec, 1, 1, OWNER, settings)[
            "spec"]["template"]["spec"]["containers"][0]["env"]
        return next((e.get("value") for e in env if e["name"] == "GENFAB_S3_ENDPOINT"), None)

    for extra, endpoint in (({}, DEFAULT.endpoint), ({"storage": {}}, None)):
        read = ResourceStorage(Access(), lambda key, extra=extra: extra, settings)  # type: ignore[arg-type]
        opened = read.spec_storage(KEY)
        assert pod_endpoint(**extra) == endpoint == (opened.endpoint if opened is not None else None)
