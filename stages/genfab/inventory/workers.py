"""A worker Job's shared state in the run's storage (`_genfab/work/<stage>/<hash10>/`), written by its
worker Pods and read by the operator.

- **The cursor** (`cursor.json`, `{"next": k, "takers": [[shard, worker], ...]}`): the next shard no worker
  has taken, and who took the last `TAKERS` shards. A worker takes it by writing `next + 1` only while the
  cursor is still the version it read (`Storage.write_if`: S3's conditional writes, a lock on a file
  system); the loser of a race reads it again. Shards are taken in index order, so the finished ones stay
  a few ranges however many there are.
- **A take is named before it is made**: the worker's record says which shard it is taking (`claiming`)
  before the cursor's write, and which it runs (`current`) after. A Pod killed between the two (SIGKILL:
  out of memory, a node lost) leaves `claiming` without `current`; the Pod that follows asks the cursor's
  takers whether that take was its own (`took`) and runs the shard as its first try if so. Without it the
  shard was handed out, named by no record, and run by nobody.
- **One record per worker** (`worker-00003.json`, `WorkerRecord`): the shard it runs now and which try of
  it that is, the shards it failed for good, as ranges, and since when it waits for input, if it does.
  Its worker writes it when it takes a shard, when one ends and as it begins to wait; the operator reads
  at most one per worker per progress period, and the cursor with them, so what it reads follows the
  Job's workers, not the stage's shards. The shards a stage's workers
  finished are those the cursor handed out that no record names as running or failed
  (`finished_shards`): a few ranges, one hole per worker. (A record that listed the shards its worker
  finished grew with them: workers take shards in turn, so each one's were every W-th index, 15 KB of
  ranges at 10,000 shards and 4 workers, past the record's bound at about 170,000, rewritten after every
  shard and parsed by every reconcile: benchmarks/worker_records.py. Records written that way are still
  read.)

- **A streaming stage's input** (`input.json`, `{"ready": k}`): its shards below k have their input
  committed (the upstream's shards of those indexes ended, done or failed for good). The operator writes
  it as it reads the upstream's progress; a worker takes shard i below it, or once the upstream's shard i
  left a succeeded final report (no wait for the operator), and waits otherwise (`take_shard`'s `ready`).

The records are the tenant's Pods' to write: a reader checks them (bounded size, typed, indexes inside
the stage) and never trusts them beyond which shard reports to read next.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from genfab.contract import indexes
from genfab.contract.names import cursor_key, input_key, worker_key
from genfab.storage.base import Storage, StorageError, StorageLimit, StorageTooLarge

MAX_RECORD_BYTES = 256 << 10
"""A record holds two range lists: far below this for any stage (its shards are taken in order)."""


@dataclass
class WorkerRecord:
    worker: int
    shards: int
    current: int | None = None
    """The shard it runs now (None: between shards, or done)."""
    attempt: int = 0
    """Which try of `current` this is (1: the first); a stop (preemption, a deleted Pod) is not a try."""
    done: str = ""
    """Shards it finished (`"0-4,9"`): what records written before `finished_shards` listed; no longer
    written (a worker's finished shards are the cursor's, less the running and failed ones)."""
    failed: str = ""
    """Shards it gave up on: bad input, or every try ended its process."""
    finished: bool = False
    """The cursor ran out: it took its last shard and ended."""
    claiming: int | None = None
    """The shard it is taking from the cursor: written before the cursor's write, so a Pod killed between
    that write and the record naming it `current` leaves it named (see the module's docs)."""
    waiting_since: float | None = None
    """A streaming stage's worker with no committed input to take: since when it waits (epoch seconds;
    None: it runs a shard, or loads). Written once as it begins to wait, cleared as it takes a shard: the
    operator releases a worker that waited longer than its stage's bound (genfab.operator.streams)."""
    updated_at: float = field(default_factory=time.time)

    def add(self, index: int, failed: bool = False) -> None:
        """`index` ended (done, or failed for good): it is no longer `current`; a failed one is kept."""
        if failed:
            self.failed = indexes.text(indexes.union(indexes.parse(self.failed), ((index, index),)))
        if self.current == index:
            self.current, self.attempt = None, 0

    def ranges(self) -> tuple[indexes.Ranges, indexes.Ranges]:
        """(done, failed), each only inside the stage's shards (a record is the Pod's to write)."""
        outside = ((self.shards, indexes.MAX_INDEX),)
        try:
            return (indexes.difference(indexes.parse(self.done), outside),
                    indexes.difference(indexes.parse(self.failed), outside))
        except ValueError:  # not ranges genfab wrote
            return (), ()


_ADAPTER = TypeAdapter(WorkerRecord)


def write_worker(run: Storage, stage: str, config_hash: str, record: WorkerRecord) -> None:
    record.updated_at = time.time()
    run.write_bytes(worker_key(stage, config_hash, record.worker), json.dumps(asdict(record)).encode())


def read_worker(run: Storage, stage: str, config_hash: str, worker: int, shards: int) -> WorkerRecord | None:
    """Worker `worker`'s record (one request), None when it has none yet or it is not one genfab wrote
    (too large, malformed, another worker's or another shard count's)."""
    try:
        record = _ADAPTER.validate_json(run.read_at_most(worker_key(stage, config_hash, worker), MAX_RECORD_BYTES,
                                                          "worker record"))
    except StorageLimit:
        raise  # the reader's budget: read again later
    except StorageTooLarge:
        return None
    except StorageError as exc:
        if str(exc).startswith("not found"):
            return None
        raise
    except (ValidationError, ValueError):
        return None
    if record.worker != worker or record.shards != shards:
        return None
    if record.current is not None and not 0 <= record.current < shards:
        record.current = None
    if record.claiming is not None and not 0 <= record.claiming < shards:
        record.claiming = None
    return record


def read_cursor(run: Storage, stage: str, config_hash: str, shards: int) -> int:
    """How many of the stage's shards its workers have taken (the cursor's `next`, within the stage; 0 with
    no cursor yet, or one genfab did not write)."""
    return _read_count(run, cursor_key(stage, config_hash), "next", "shard cursor", shards, MAX_CURSOR_BYTES)


def finished_shards(taken: int, records: Iterable[WorkerRecord], shards: int
                    ) -> tuple[indexes.Ranges, indexes.Ranges]:
    """(done, failed) shards of a worker Job: the `taken` first shards less those a record names as its
    current one or failed, and the failed ones (what records written before this listed as done is
    added). O(workers), whatever the shards: workers take them in index order. A shard taken an instant
    before its worker's record names it may be counted done early: its report, still running or not
    there, says it is not (the progress reader folds only final reports while the Job runs)."""
    running: indexes.Ranges = ()
    failed: indexes.Ranges = ()
    listed: indexes.Ranges = ()
    for record in records:
        ok, bad = record.ranges()
        failed, listed = indexes.union(failed, bad), indexes.union(listed, ok)
        for shard in {record.current, record.claiming} - {None}:  # a shard being taken is not done either
            assert shard is not None
            running = indexes.union(running, ((shard, shard),))
    handed = ((0, min(taken, shards) - 1),) if taken > 0 else ()
    done = indexes.union(indexes.difference(indexes.difference(handed, running), failed),
                         indexes.difference(listed, failed))
    return done, failed


MAX_INPUT_BYTES = 4096


def write_input(run: Storage, stage: str, config_hash: str, ready: int) -> None:
    run.write_bytes(input_key(stage, config_hash), json.dumps({"ready": ready}).encode())


def read_input(run: Storage, stage: str, config_hash: str, shards: int) -> int:
    """How many of a streaming stage's shards have their input committed (0 when nothing says so yet, or
    what is there is not what genfab writes)."""
    return _read_count(run, input_key(stage, config_hash), "ready", "stream input", shards)


def _read_count(run: Storage, key: str, field: str, what: str, shards: int, limit: int = MAX_INPUT_BYTES) -> int:
    """`{field: n}` at `key`, within [0, shards]; 0 when it is not there or not what genfab writes."""
    try:
        count = int(json.loads(run.read_at_most(key, limit, what))[field])
    except StorageLimit:
        raise
    except StorageTooLarge:
        return 0
    except StorageError as exc:
        if str(exc).startswith("not found"):
            return 0
        raise
    except (ValueError, KeyError, TypeError):
        return 0
    return min(max(0, count), shards)


CURSOR_TRIES = 64
TAKERS = 256
"""Takes the cursor remembers (shard, worker): a Pod killed as it took a shard is followed within seconds,
a few takes later, so whether the take was its own is read there (`took`)."""
MAX_CURSOR_BYTES = 16 << 10
"""A cursor holds a count and `TAKERS` pairs: about 4 KB."""
WAIT: Literal["wait"] = "wait"
"""`take_shard`: the next shard's input is not committed yet."""


def _cursor(run: Storage, key: str, raw: bytes) -> tuple[int, list[tuple[int, int]]]:
    """(next, takers) of a cursor's bytes (takers left out when they are not pairs of counts: a cursor
    written before they were kept)."""
    try:
        doc = json.loads(raw)
        taken = max(0, int(doc["next"]))
    except (ValueError, KeyError, TypeError):
        raise StorageError(f"{run.child(key)} is not a shard cursor genfab wrote") from None
    takers = doc.get("takers") if isinstance(doc, dict) else None
    pairs = [(int(p[0]), int(p[1])) for p in takers if isinstance(p, list) and len(p) == 2
             and all(isinstance(v, int) for v in p)] if isinstance(takers, list) else []
    return taken, pairs


def take_shard(run: Storage, stage: str, config_hash: str, shards: int,
               ready: Callable[[int], bool] | None = None, worker: int = -1,
               claiming: Callable[[int], None] | None = None) -> int | Literal["wait"] | None:
    """The next shard no worker has taken, now this caller's (`worker`, named among the cursor's takers);
    None when every shard is taken; `WAIT` when `ready` says the next one's input is not committed yet (a
    streaming stage). `claiming(shard)` runs before each try to take `shard` (the worker's record names it)."""
    key = cursor_key(stage, config_hash)
    for _ in range(CURSOR_TRIES):
        found = run.read_versioned(key)
        raw, version = found if found is not None else (None, None)
        taken, takers = _cursor(run, key, raw) if raw is not None else (0, [])
        if taken >= shards:
            return None
        if ready is not None and not ready(taken):
            return WAIT
        if claiming is not None:
            claiming(taken)
        doc = {"next": taken + 1, "takers": [list(p) for p in [*takers, (taken, worker)][-TAKERS:]]}
        if run.write_if(key, json.dumps(doc).encode(), version) is not None:
            return taken
    raise StorageError(f"{run.child(key)}: {CURSOR_TRIES} workers' writes in a row won over this one")


def took(run: Storage, stage: str, config_hash: str, shards: int, worker: int, shard: int,
         started: Callable[[int], bool]) -> bool:
    """Whether `worker` took `shard` (its record named it `claiming` and its Pod ended before `current`): the
    cursor moved past it and its taker was this worker; when more than `TAKERS` takes have passed since, it
    was this worker's unless the shard has started (`started`: its report is there: another worker runs or
    ran it). Run only by a worker's Pod that follows one killed as it took a shard."""
    key = cursor_key(stage, config_hash)
    found = run.read_versioned(key)
    if found is None:
        return False
    taken, takers = _cursor(run, key, found[0])
    if not 0 <= shard < min(taken, shards):
        return False  # the cursor's write never happened
    by = [w for s, w in takers if s == shard]
    if by:
        return by[-1] == worker
    return not started(shard)
