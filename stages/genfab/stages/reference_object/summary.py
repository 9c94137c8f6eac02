"""A stage-wide record kept by shards: each shard writes its own part, and every shard that finishes
merges all parts of the stage's config into the stage's summary files.

Parts live at `_genfab/parts/<stage>/<config hash>/shard-<index>.json` under the run root. A shard
adds to its part (a re-run shard keeps what it recorded before, so samples it reuses stay counted),
then merges: list the parts, write the summary, list again, and merge once more if a part appeared
meanwhile. The last shard to write therefore lists after its own write, and so sees every part
written before it: whichever shard finishes last leaves the complete summary. Parts from another
config are never mixed in."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from genfab.stages.runtime import StageContext

MAX_PART_BYTES = 64 << 20
"""A part larger than this is not read (what genfab reads back from storage is bounded)."""
MERGE_ROUNDS = 5


class ShardParts:
    def __init__(self, ctx: StageContext, stage: str | None = None) -> None:
        self.ctx = ctx
        self.prefix = f"_genfab/parts/{stage or ctx.stage}/{ctx.config_hash}/"
        self.entries: dict[str, Any] = {}
        """This shard's records so far (a warm worker's next shard starts from none)."""

    @property
    def key(self) -> str:
        """The part of the context's current shard."""
        return f"{self.prefix}shard-{self.ctx.index}.json"

    def add(self, key: str, value: Any) -> None:
        self.entries[key] = value

    def _read(self, key: str) -> dict[str, Any]:
        run = self.ctx.run_storage
        if not run.exists(key):
            return {}
        raw = run.read_bytes(key)
        if len(raw) > MAX_PART_BYTES:
            raise ValueError(f"{run.child(key)} is larger than {MAX_PART_BYTES} bytes")
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError(f"{run.child(key)} is not a JSON object")
        return doc

    def _parts(self) -> list[str]:
        return sorted(o.key for o in self.ctx.run_storage.list(self.prefix) if o.key.endswith(".json"))

    def merged(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self._parts():
            out.update(self._read(key))
        return out

    def publish(self, write: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Save this shard's part, then write the merged record with `write` until no new part shows up."""
        mine = {**self._read(self.key), **self.entries}
        self.ctx.run_storage.write_bytes(self.key, json.dumps(mine, sort_keys=True).encode())
        self.entries = {}
        seen: list[str] = []
        merged: dict[str, Any] = {}
        for _ in range(MERGE_ROUNDS):
            parts = self._parts()
            if parts == seen:
                break
            seen = parts
            merged = self.merged()
            write(merged)
        return merged
