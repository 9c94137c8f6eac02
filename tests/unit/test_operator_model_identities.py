"""The operator's model identities: read from an `s3://` models.uri with the resource's Secret only,
remembered for a while, and a failing store never changes a hash it already knows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from genfab.api.common import ModelSource
from genfab.operator.builders import Owner
from genfab.operator.model_access import IDENTITY_SECONDS, ModelIdentities
from genfab.storage import ObjectInfo, StorageError

OWNER = Owner("genfab.dev/v1alpha1", "SceneJob", "s", "team-a", "uid")
SECRET = {"secretRef": {"name": "genfab-s3"}}


class Store:
    def __init__(self) -> None:
        self.etag = "e1"
        self.lists = 0
        self.fail = False

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self.lists += 1
        if self.fail:
            raise StorageError("s3://lab/models: SlowDown")
        yield ObjectInfo(f"{prefix}model.safetensors", 5 << 20, self.etag)

    def read_bytes(self, key: str) -> bytes:
        return b"{}"


class Access:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.opened: list[tuple[str, Any]] = []

    def open(self, uri: str, owner: Owner, storage: dict[str, Any] | None) -> Store:
        self.opened.append((uri, storage))
        return self.store


@pytest.mark.parametrize(("models", "storage"), [
    (ModelSource(uri="s3://lab/models"), None),                 # no Secret: never with the operator's own keys
    (ModelSource(uri="file:///models"), SECRET),                # the operator's own disk: never
    (ModelSource(persistentVolumeClaim="lab-models"), SECRET),  # not mounted in the operator
    (None, SECRET),
])
def test_what_the_operator_does_not_read(models: ModelSource | None, storage: dict[str, Any] | None) -> None:
    access = Access(Store())
    assert ModelIdentities(access, clock=lambda: 0.0).read(OWNER, models, storage, ["org/m"]) == {}  # type: ignore[arg-type]
    assert access.opened == []


def test_identities_are_read_with_the_secret_cached_and_kept_when_the_store_fails() -> None:
    store, now = Store(), [0.0]
    ids = ModelIdentities(Access(store), clock=lambda: now[0])  # type: ignore[arg-type]
    models = ModelSource(uri="s3://lab/models")
    first = ids.read(OWNER, models, SECRET, ["org/m"])
    assert set(first) == {"org/m"} and store.lists == 1
    assert ids.read(OWNER, models, SECRET, ["org/m"]) == first and store.lists == 1  # cached
    store.etag, now[0] = "e2", IDENTITY_SECONDS + 1
    second = ids.read(OWNER, models, SECRET, ["org/m"])
    assert second != first  # new weights seen after the cache time
    store.fail, now[0] = True, 3 * IDENTITY_SECONDS
    assert ids.read(OWNER, models, SECRET, ["org/m"]) == second  # a flaky store keeps the last identity
    with pytest.raises(StorageError, match=r"spec\.models\.uri"):  # never read, and the store fails: retry later
        ids.read(OWNER, models, SECRET, ["org/other"])
