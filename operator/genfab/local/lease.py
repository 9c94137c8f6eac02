"""One local run per output at a time: a lease object `{output}/_genfab/lease.json`.

The lease names its holder (user, host, process) and an expiry the holder pushes forward while it
runs. A second run on the same output gets one line saying who holds it and until when. A lease
expires when its holder stops renewing it (killed, machine gone), or at once when its holder was a
process on this machine that no longer exists; a finished run releases it. Taking a lease is a
conditional write (S3 If-None-Match / If-Match, a file lock for `file://`), so two runs starting
together cannot both win.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError

from genfab.contract.names import RUN_DIR
from genfab.storage import Storage, StorageError

LEASE_KEY = f"{RUN_DIR}/lease.json"
TTL_SECONDS = 60.0
"""How long a lease lasts without renewal: a run killed without releasing it blocks the output this
long (from another machine; on the same machine, not at all)."""
RENEW_SECONDS = 15.0
MAX_LEASE_BYTES = 64 << 10


class OutputInUse(RuntimeError):
    """Another run holds the output's lease."""


class LeaseLost(RuntimeError):
    """This run's lease was taken over (it could not renew it in time)."""


@dataclass(frozen=True)
class LeaseDoc:
    holder: str
    """`user@host`, for people."""
    host: str
    pid: int
    run_id: str
    resource: str
    """`Kind/name` of the run."""
    acquired_at: float
    expires_at: float
    """Epoch seconds; 0 once released."""


_ADAPTER = TypeAdapter(LeaseDoc)
Alive = Callable[[str, int], bool | None]
"""(host, pid) -> whether that process runs (None: cannot tell from here)."""


def process_alive(host: str, pid: int) -> bool | None:
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # exists, owned by someone else
    return True


def is_free(current: LeaseDoc | None, now: float, alive: Alive) -> bool:
    """May a run take the output? Yes without a lease, or when it was released, expired, or its
    holder process is gone from this machine."""
    if current is None or current.expires_at <= now:
        return True
    return alive(current.host, current.pid) is False


def gone_holder(storage: Storage, now: float, alive: Alive = process_alive) -> LeaseDoc | None:
    """The lease's holder when it stopped without releasing it (killed, its machine gone): its process
    is gone from this machine or it no longer renews the lease. None while it runs, or once released."""
    try:
        found = storage.read_versioned(LEASE_KEY)
    except StorageError:
        return None
    current = parse_lease(found[0]) if found else None
    if current is None or current.expires_at == 0:
        return None
    return current if is_free(current, now, alive) else None


def gone_message(holder: LeaseDoc) -> str:
    """One line for `genfab status`: the run that wrote this status is gone, and how to go on."""
    return (f"Stopped: the run of {holder.resource} by {holder.holder} (pid {holder.pid} on {holder.host}) is gone "
            "(killed, or its machine stopped) and wrote no end; run the same `genfab run` again to continue "
            "(committed samples are reused)")


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def in_use_message(uri: str, current: LeaseDoc) -> str:
    return (f"output {uri} is in use by {current.resource} run by {current.holder} (pid {current.pid}) since "
            f"{_when(current.acquired_at)}; its lease expires at {_when(current.expires_at)} unless that run "
            f"renews it (every {RENEW_SECONDS:.0f} s while it runs). Wait for it to finish, or if it was "
            "stopped, start again after that time")


def parse_lease(raw: bytes) -> LeaseDoc | None:
    """A lease, or None for an object that is not one (too large, not JSON, wrong shape): it is
    taken over like an expired lease."""
    if len(raw) > MAX_LEASE_BYTES:
        return None
    try:
        return _ADAPTER.validate_json(raw)
    except (ValidationError, ValueError):
        return None


class Lease:
    def __init__(self, storage: Storage, resource: str, *, ttl: float = TTL_SECONDS,
                 clock: Callable[[], float] = time.time, alive: Alive = process_alive) -> None:
        self.storage = storage
        self.ttl = ttl
        self.clock = clock
        self.alive = alive
        self.doc = LeaseDoc(holder=f"{getpass.getuser()}@{socket.gethostname()}", host=socket.gethostname(),
                            pid=os.getpid(), run_id=uuid.uuid4().hex, resource=resource, acquired_at=0.0,
                            expires_at=0.0)
        self.version: str | None = None
        self.renewed = 0.0
        self.took_over: LeaseDoc | None = None
        """The stale lease this run replaced (its holder stopped without releasing it)."""

    def _write(self, version: str | None, **changes: float) -> str | None:
        """Write this run's lease with `changes` if the stored one is still at `version`; the local
        copy changes only when the write did."""
        doc = LeaseDoc(**{**asdict(self.doc), **changes})
        written = self.storage.write_if(LEASE_KEY, json.dumps(asdict(doc), indent=2).encode(), version)
        if written is not None:
            self.doc = doc
        return written

    def acquire(self) -> None:
        """Take the lease or raise OutputInUse naming its holder."""
        for _ in range(3):  # lost a race to a release or to another starter: look again
            found = self.storage.read_versioned(LEASE_KEY)
            current = parse_lease(found[0]) if found else None
            now = self.clock()
            if found and current is not None and not is_free(current, now, self.alive):
                raise OutputInUse(in_use_message(self.storage.uri, current))
            version = self._write(found[1] if found else None, acquired_at=now, expires_at=now + self.ttl)
            if version is not None:
                self.version, self.renewed = version, now
                stale = current is not None and current.expires_at > 0 and current.run_id != self.doc.run_id
                self.took_over = current if stale else None
                return
        raise OutputInUse(f"output {self.storage.uri}: another run took its lease at the same moment")

    def renew_if_due(self) -> None:
        """Push the expiry forward every RENEW_SECONDS; raise LeaseLost when another run took the
        lease. A storage hiccup is retried at the next call until the lease would expire."""
        now = self.clock()
        if self.version is None or now - self.renewed < RENEW_SECONDS:
            return
        try:
            version = self._write(self.version, expires_at=now + self.ttl)
        except StorageError:
            if now < self.doc.expires_at - RENEW_SECONDS:
                return
            raise LeaseLost(f"output {self.storage.uri}: the lease could not be renewed before it expired"
                            ) from None
        if version is None:
            raise LeaseLost(f"output {self.storage.uri}: another run took over its lease (this run did not renew "
                            f"it for {self.ttl:.0f} s); stopped")
        self.version, self.renewed = version, now

    def release(self) -> None:
        """Mark the lease released (kept as a record of the last holder); never raises."""
        if self.version is None:
            return
        with contextlib.suppress(StorageError):  # it expires on its own
            self._write(self.version, expires_at=0.0)
        self.version = None
