"""What the operator tells a shared worker about a stage it hosts (`names.hosted_key`): the stage started
(its config and shard count: what a Job of its own would have mounted and set), or it will not run (its
upstream failed), so the workers stop waiting for it. The Job's `GENFAB_HOSTED` names the stages and config
hashes; a document naming another stage or hash, or another run, is not the operator's and is refused."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from genfab.contract.config import ContractModel, StageConfig

MAX_HOSTED_BYTES = 1 << 20
"""A hosted stage's document holds one stage config (a few KB; its settings at most what a ConfigMap holds)."""


class HostedMember(ContractModel):
    """One stage a shared worker Job hosts, as `GENFAB_HOSTED` lists it."""

    stage: str
    config_hash: str


class HostedStage(ContractModel):
    """The operator's word on a hosted stage: started (`config`, `shards`), or `stopped` (why)."""

    config: StageConfig | None = None
    shards: int = Field(0, ge=0)
    manifest: bool = False
    """Its shards read their samples from its sample manifest (an inventory Job listed them)."""
    stopped: str = ""


def members_json(members: list[HostedMember]) -> str:
    """`GENFAB_HOSTED`'s value."""
    return json.dumps([m.model_dump(by_alias=True) for m in members], separators=(",", ":"))


def parse_members(text: str) -> list[HostedMember]:
    """`GENFAB_HOSTED` read back (ValueError when it is not what the operator writes)."""
    doc: Any = json.loads(text)
    if not isinstance(doc, list):
        raise ValueError("not a list")
    return [HostedMember.model_validate(item) for item in doc]
