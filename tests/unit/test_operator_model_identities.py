"""The operator's model identities: read from an `s3://` models.uri with the resource's Secret only,
remembered for a while, and a failing store never changes a hash it already knows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from genfab.api.common import ModelSource, Storage
from genfab.operator.model_access import IDENTITY_SECONDS, ModelIdentities
from genfab.operator.objects import Owner
from genfab.storage import ObjectInfo, StorageError

OWNER = Owner("genfab.dev/v1alpha1", "SceneJob", "s", "team-a", "uid")
SECRET = Storage.model_validate({"secretRef": {"name": "genfab-s3"}})


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

    def open(self, uri: str, owner: Owner, storage: Storage | None) -> Store:
        self.opened.append((uri, storage))
        return self.store


@pytest.mark.parametrize(("models", "storage"), [
    (ModelSource(uri="s3://lab/models"), None),                 # no Secret: never with the operator's own keys
    (ModelSource(uri="file:///models"), SECRET),                # the operator's own disk: never
    (ModelSource(persistentVolumeClaim="lab-models"), SECRET),  # not mounted in the operator
    (None, SECRET),
])
def test_what_the_operator_does_not_read(models: ModelSource | None, storage: Storage | None) -> None:
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


def test_the_cache_is_per_endpoint_and_secret() -> None:
    """L7: within a namespace, the same location read through another endpoint or Secret is another
    store; its identity was served from the first one's cache."""
    stores = {"http://a:9000": Store(), "http://b:9000": Store()}
    stores["http://b:9000"].etag = "other"

    class ByEndpoint(Access):
        def open(self, uri: str, owner: Owner, storage: Storage | None) -> Store:
            assert storage is not None and storage.endpoint is not None
            return stores[storage.endpoint]

    ids = ModelIdentities(ByEndpoint(Store()), clock=lambda: 0.0)  # type: ignore[arg-type]
    models = ModelSource(uri="s3://lab/models")
    a = ids.read(OWNER, models, SECRET.model_copy(update={"endpoint": "http://a:9000"}), ["org/m"])
    b = ids.read(OWNER, models, SECRET.model_copy(update={"endpoint": "http://b:9000"}), ["org/m"])
    assert a != b and stores["http://b:9000"].lists == 1
    other_secret = Storage.model_validate({"secretRef": {"name": "team-b-s3"}, "endpoint": "http://a:9000"})
    ids.read(OWNER, models, other_secret, ["org/m"])
    assert stores["http://a:9000"].lists == 2  # read again with the other Secret, not taken from the cache


def test_listing_again_reads_no_unchanged_small_file() -> None:
    """M1: identities expire every 60 s; listing again costs the listing, not a read per small file."""
    reads = {"n": 0}

    class Small(Store):
        def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
            self.lists += 1
            for i in range(50):
                yield ObjectInfo(f"{prefix}f{i}.json", 10, f"e{i}", 1.0)

        def read_at_most(self, key: str, limit: int, what: str = "") -> bytes:
            reads["n"] += 1
            return b"{}"

    now = [0.0]
    ids = ModelIdentities(Access(Small()), clock=lambda: now[0])  # type: ignore[arg-type]
    models = ModelSource(uri="s3://lab/models")
    first = ids.read(OWNER, models, SECRET, ["org/m"])
    assert reads["n"] == 50
    now[0] = IDENTITY_SECONDS + 1
    assert ids.read(OWNER, models, SECRET, ["org/m"]) == first and reads["n"] == 50


def test_a_folder_past_the_bounds_is_not_listed_again_for_a_while() -> None:
    """M1: a resource retried with backoff paid the listing and 256 reads each time."""
    class Flood(Store):
        def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
            self.lists += 1
            for i in range(300):
                yield ObjectInfo(f"{prefix}f{i}.json", 10, f"e{i}", 1.0)

        def read_at_most(self, key: str, limit: int, what: str = "") -> bytes:
            return b"{}"

        def child(self, key: str) -> str:
            return f"s3://lab/models/{key}"

    store, now = Flood(), [0.0]
    ids = ModelIdentities(Access(store), clock=lambda: now[0])  # type: ignore[arg-type]
    models = ModelSource(uri="s3://lab/models")
    for _ in range(5):
        with pytest.raises(StorageError, match="more than 256 small files"):
            ids.read(OWNER, models, SECRET, ["org/m"])
    assert store.lists == 1
    now[0] = IDENTITY_SECONDS + 1
    with pytest.raises(StorageError, match="more than 256 small files"):
        ids.read(OWNER, models, SECRET, ["org/m"])
    assert store.lists == 2


def test_a_folder_that_stays_past_a_bound_is_read_ever_less_often_and_afresh_once_fixed() -> None:
    """A resource stalled on a model folder for a day: each refusal in a row doubles the wait (60 s,
    120 s, ... one hour at most), so the folder is listed about 30 times, not at every retry; once it
    reads, the next refusal waits 60 s again. A listing past the reconcile's budget (StorageLimit)
    waits the same way."""
    from genfab.operator.model_access import MAX_REFUSED_SECONDS
    from genfab.storage import StorageLimit

    class Limited(Store):
        broken = True

        def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
            self.lists += 1
            if self.broken:
                raise StorageLimit("more than 200000 objects listed", "listed")
            yield ObjectInfo(f"{prefix}model.safetensors", 5 << 20, self.etag)

    store, now = Limited(), [0.0]
    ids = ModelIdentities(Access(store), clock=lambda: now[0])  # type: ignore[arg-type]
    models = ModelSource(uri="s3://lab/models")
    while now[0] < 86_400:  # a retry every 10 s for a day
        with pytest.raises(StorageError):
            ids.read(OWNER, models, SECRET, ["org/m"])
        now[0] += 10
    assert 20 <= store.lists <= 40, store.lists  # 6 doublings to an hour, then hourly
    assert ids._refused[next(iter(ids._refused))][2] == MAX_REFUSED_SECONDS
    store.broken = False
    now[0] += MAX_REFUSED_SECONDS
    assert ids.read(OWNER, models, SECRET, ["org/m"])["org/m"]
    assert not ids._refused  # read: the backoff starts over
