"""The operator's read access to a resource's object storage (sample listing, shard reports).

It uses the same endpoint and Secret the resource gives its stage Pods, read through the API
(the chart grants `get` on Secrets only). Values are decoded in memory and never logged. Inside a
reconcile every storage it hands out charges the reconcile's budget (`read_budget`); `file://`
storage is confined to the namespace's folders (`policy.file_roots`), symbolic links included; S3
calls time out sooner than a stage's (an unanswering store holds a worker seconds, not minutes).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from genfab.api.common import Storage as StorageSpec
from genfab.contract.names import ENV_ACCESS_KEY_ID, ENV_SECRET_ACCESS_KEY, ENV_SESSION_TOKEN
from genfab.operator import read_budget
from genfab.operator.kube import Kube, NotFound
from genfab.operator.objects import Key, Owner, Secret, resource_path
from genfab.operator.settings import OperatorSettings
from genfab.storage import S3Settings, Storage, StorageError, open_storage

CACHE_SECONDS = 300.0
TIMEOUTS = {"connect_timeout": 5.0, "read_timeout": 10.0, "max_attempts": 3}
"""The operator's S3 calls: a stage Pod waits longer (60 s reads, 10 attempts); a reconcile retries later."""
SECRET_KEYS = {ENV_ACCESS_KEY_ID: "access_key_id", ENV_SECRET_ACCESS_KEY: "secret_access_key",
               ENV_SESSION_TOKEN: "session_token"}


class StorageAccess:
    def __init__(self, kube: Kube, file_roots: Callable[[str], tuple[str, ...]] = lambda namespace: ()) -> None:
        self.kube = kube
        self.file_roots = file_roots
        """Namespace -> the folders its `file://` storage is confined to."""
        self._lock = threading.Lock()
        self._settings: dict[tuple[str, str], tuple[S3Settings, float]] = {}
        self._opened: dict[tuple[str, S3Settings], Storage] = {}
        """boto3 clients are thread-safe and costly to build: one per URI and settings."""

    def settings(self, owner: Owner, storage: StorageSpec | None) -> S3Settings:
        storage = storage or StorageSpec()
        secret = storage.secret_ref.name if storage.secret_ref is not None else ""
        slot = (owner.namespace, storage.model_dump_json())
        with self._lock:
            hit = self._settings.get(slot)
        if hit is not None and time.monotonic() - hit[1] < CACHE_SECONDS:
            return hit[0]
        values: dict[str, Any] = {"endpoint": storage.endpoint, "region": storage.region,
                                  "addressing_style": storage.addressing_style}
        if secret:
            try:
                found: Secret = self.kube.get(resource_path("v1", "secrets", owner.namespace, secret))
                data = found.get("data", {})
            except NotFound:  # a condition on the resource, not a traceback in the log
                raise StorageError(f"Secret {secret!r} (the storage credentials) does not exist in namespace "
                                   f"{owner.namespace}") from None
            for key, field in SECRET_KEYS.items():
                if key in data:
                    values[field] = base64.b64decode(data[key]).decode()
        values = {k: v for k, v in values.items() if v is not None} | TIMEOUTS
        settings = S3Settings.from_env(**values) if not secret else S3Settings(**values)
        with self._lock:
            self._settings[slot] = (settings, time.monotonic())
        return settings

    def open(self, uri: str, owner: Owner, storage: StorageSpec | None) -> Storage:
        spend = read_budget.current()
        opened = self._open(uri, owner, storage)
        return opened if spend is None else read_budget.BudgetedStorage(opened, spend)

    def _open(self, uri: str, owner: Owner, storage: StorageSpec | None) -> Storage:
        if uri.startswith("file://"):
            spend = read_budget.current()  # a listing walks the folder first: bounded before it yields
            return open_storage(uri, confine=self.file_roots(owner.namespace),
                                max_listed=spend.bounds.listed if spend is not None else None)
        settings = self.settings(owner, storage)
        with self._lock:
            hit = self._opened.get((uri, settings))
        if hit is None:
            hit = open_storage(uri, settings)
            with self._lock:
                if len(self._opened) > 1024:  # bounded: settings change when Secrets rotate
                    self._opened.clear()
                self._opened[(uri, settings)] = hit
        return hit


Opener = Callable[[Key, str, Owner], Storage]
"""`open(key, uri, owner)`: the storage at `uri` as resource `key`'s stage Pods reach it (`ResourceStorage.open`)."""


class ResourceStorage:
    """Storage as a resource's stage Pods reach it: the resource's `spec.storage` (its endpoint and Secret),
    else the operator's default storage (the chart's `storage` values)."""

    def __init__(self, access: StorageAccess, spec_of: Callable[[Key], Mapping[str, object] | None],
                 settings: OperatorSettings) -> None:
        self.access = access
        self.spec_of = spec_of
        """A resource's `spec` as last watched (None: not seen)."""
        self.settings = settings

    def spec_storage(self, key: Key) -> StorageSpec | None:
        """The resource's `spec.storage`, else the operator's default storage (`OperatorSettings.storage_for`,
        the rule the stage Pods' environment follows). A resource whose `spec.storage` the API refuses is
        refused before anything of it is read (`Controller._admit`): a StorageError here."""
        spec = self.spec_of(key)
        raw = spec.get("storage") if spec is not None else None
        try:
            given = StorageSpec.model_validate(raw) if raw is not None else None
        except ValidationError as exc:
            raise StorageError(f"spec.storage: {exc.errors()[0]['msg']}") from None
        return self.settings.storage_for(given)

    def open(self, key: Key, uri: str, owner: Owner) -> Storage:
        return self.access.open(uri, owner, self.spec_storage(key))
