"""Which resources one operator process reconciles when several share the work (`--shard I/N`). Pure.

The split is by resource UID, the way Kubernetes' sharded list and watch splits (KEP-5866, feature
gate `ShardedListAndWatch`, Kubernetes 1.36): the 64-bit FNV-1a hash of `metadata.uid`, cut into
`BUCKETS` equal ranges by its top byte. Shard I of N owns the buckets [I*256/N, (I+1)*256/N):
- its genfab resources come from a `shardSelector` on their lists and watches (filtered by the API
  server where the gate is on; `owns` filters them again in the operator, where it is not);
- a resource's stage Jobs and their Pods carry the resource's bucket as a label (`LABEL_BUCKET`), and
  a label selector on those watches splits them on every Kubernetes version.

A UID is random, so resources spread evenly whatever their names or namespaces (a namespace-based
split would put a lab's `team-a`, `team-b`, ... on one shard: FNV-1a's top bits barely depend on a
name's last characters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BUCKETS = 256
LABEL_BUCKET = "genfab.dev/shard-bucket"
"""On stage Jobs and their Pods: the owning resource's bucket, two hex digits (`bucket_label`)."""
MAX_SHARDS = 64
_FNV_OFFSET, _FNV_PRIME, _MASK = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def fnv1a64(text: str) -> int:
    """FNV-1a, 64 bits, of the UTF-8 bytes: Go's `hash/fnv` New64a, which the API server uses."""
    h = _FNV_OFFSET
    for byte in text.encode():
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h


def bucket_of(uid: str) -> int:
    return fnv1a64(uid) >> 56


def bucket_label(uid: str) -> str:
    return f"{bucket_of(uid):02x}"


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`I/N` with 0 <= I < N <= MAX_SHARDS; ValueError says what is allowed."""
        m = _SHARD.match(text)
        if m is None:
            raise ValueError(f"shard {text!r}: expected I/N (this process's index and the number of shards, "
                             "e.g. 0/4)")
        index, count = int(m[1]), int(m[2])
        if not 1 <= count <= MAX_SHARDS or not 0 <= index < count:
            raise ValueError(f"shard {text!r}: need 1 <= N <= {MAX_SHARDS} shards and 0 <= I < N")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def buckets(self) -> range:
        return range(self.index * BUCKETS // self.count, (self.index + 1) * BUCKETS // self.count)

    def owns(self, uid: str) -> bool:
        return bucket_of(uid) in self.buckets

    def shard_selector(self) -> str:
        """The API server's `shardSelector` for this shard's buckets (bounds as 16 hex digits, the end
        exclusive; the last shard ends at 2^64, which the server writes with 17)."""
        return (f"shardRange(object.metadata.uid, '0x{self.buckets.start << 56:016x}', "
                f"'0x{self.buckets.stop << 56:016x}')")

    def label_selector(self) -> str:
        """Stage Jobs and Pods of this shard's resources, by their owner's bucket."""
        return f"{LABEL_BUCKET} in ({','.join(f'{b:02x}' for b in self.buckets)})"
