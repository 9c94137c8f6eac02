"""The operator reads a resource's S3 storage with the credentials of the Secret the resource names."""

from __future__ import annotations

import base64
from typing import Any

from genfab.api.common import Storage
from genfab.operator.objects import Owner
from genfab.operator.storage_access import StorageAccess
from genfab.storage import S3Settings, open_storage
from tests.storage.s3 import BUCKET


class FakeKube:
    """Answers the one GET the operator makes for storage: the Secret."""

    def __init__(self, data: dict[str, str]) -> None:
        self.data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        self.gets: list[str] = []

    def get(self, path: str) -> dict[str, Any]:
        self.gets.append(path)
        return {"data": self.data}


def test_storage_access_uses_the_referenced_secret_and_reuses_clients(s3_endpoint: str) -> None:
    kube = FakeKube({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "SUPERSECRETKEY123"})
    access = StorageAccess(kube)  # type: ignore[arg-type]
    owner = Owner("genfab.dev/v1alpha1", "DatasetJob", "d", "lab", "u")
    spec = Storage.model_validate({"endpoint": s3_endpoint, "addressingStyle": "path",
                                   "secretRef": {"name": "s3-creds"}})
    uri = f"s3://{BUCKET}/operator-access"
    open_storage(uri, S3Settings(endpoint=s3_endpoint, addressing_style="path", access_key_id="test",
                                 secret_access_key="x")).write_bytes("_genfab/progress/a.json", b"{}")
    run = access.open(uri, owner, spec)
    assert [o.key for o in run.list("_genfab/progress/")] == ["_genfab/progress/a.json"]
    assert access.open(uri, owner, spec) is run  # one boto3 client per URI and settings
    assert kube.gets == ["/api/v1/namespaces/lab/secrets/s3-creds"]  # cached, not re-read per reconcile
    assert "SUPERSECRETKEY123" not in repr(access.settings(owner, spec))
