"""Stages that share a worker on a cluster (`PlannedStage.shares_worker`: vistadream's outpaint, depth
and coarse load the FLUX fill and the depth model).

- The group's first member to start (its first in plan order) gets the shared worker Job: a worker Job with
  the holder's image and resources (the member that loads every shared model itself, so the Pod fits the
  group wherever the holder fits), whose `GENFAB_HOSTED` names the members it hosts, those not started
  yet (`hostable`), and whose `ANNOTATION_HOSTS` says so.
- A hosted member starts as a stage of its own would (its samples listed or its stream's shards counted,
  its reports cleared, its input marked), but with no Job: the operator writes its config and shard count
  to the run's storage (`contract.hosted`), where the Job's workers find it, and records it on the Job
  (`hosted_annotation`: its config hash, shards, samples and the stage it streams from). From then on the
  member's Job is the shared one, seen through that record (`observe.job_view(job, member)`): its own
  cursor, records, reports and counts, the Job's Pods, and its end.
- A member that will not run (its upstream failed) is marked stopped there, so the workers do not wait
  for it; a member the shared Job is gone for (finished, or never made) runs as a Job of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from genfab.contract import StageConfig
from genfab.contract.hosted import MAX_HOSTED_BYTES, HostedStage
from genfab.contract.names import hosted_key
from genfab.operator.objects import Job
from genfab.planner import PlannedStage
from genfab.storage import Storage, StorageError
from genfab.storage.base import StorageLimit

ANNOTATION_HOSTS = "genfab.dev/hosts"
"""On a shared worker Job: the stages it may host (comma-separated), besides its own."""
HOSTED_PREFIX = "genfab.dev/hosted."
"""`genfab.dev/hosted.<stage>`: a hosted stage that started (JSON, `Hosted`)."""


def hosted_annotation(stage: str) -> str:
    return HOSTED_PREFIX + stage


@dataclass(frozen=True)
class Hosted:
    """A hosted stage as its shared Job records it."""

    config_hash: str
    shards: int
    samples: int
    streams_from: str = ""

    def to_json(self) -> str:
        return json.dumps({"configHash": self.config_hash, "shards": self.shards, "samples": self.samples,
                           "streamsFrom": self.streams_from}, separators=(",", ":"))


def hosted_on(job: Job) -> dict[str, Hosted]:
    """The stages a shared worker Job hosts that started, by name (a record that is not the operator's is
    left out: the stage is then not hosted there)."""
    found: dict[str, Hosted] = {}
    for key, value in job.get("metadata", {}).get("annotations", {}).items():
        if not key.startswith(HOSTED_PREFIX):
            continue
        try:
            doc = json.loads(value)
            found[key[len(HOSTED_PREFIX):]] = Hosted(str(doc["configHash"]), max(0, int(doc["shards"])),
                                                     max(0, int(doc["samples"])), str(doc.get("streamsFrom") or ""))
        except (ValueError, KeyError, TypeError):
            continue
    return found


def hosts_value(members: Sequence[PlannedStage]) -> str:
    """`ANNOTATION_HOSTS`: each hosted stage with its config hash (`depth@bf9d48046d`): a member whose
    config changed is another stage to the Job, which it does not host."""
    return ",".join(f"{s.name}@{s.short_hash}" for s in members)


def hosts(job: Job) -> tuple[tuple[str, str], ...]:
    """The stages a shared worker Job may host, with their short config hashes (empty: it is not one)."""
    text = job.get("metadata", {}).get("annotations", {}).get(ANNOTATION_HOSTS, "")
    return tuple((name, short) for item in text.split(",") for name, _, short in [item.partition("@")]
                 if name and short)


def stale_hosted(job: Job, wanted: Mapping[str, str]) -> list[tuple[str, str]]:
    """The stages a shared worker Job hosts under a config the plan no longer has (`wanted`: each stage's
    short hash): its workers must stop waiting for them, or stop taking their shards."""
    return [(name, short) for name, short in hosts(job) if wanted.get(name) != short]


def stream_source(cfg: StageConfig) -> str:
    """The stage a hosted stage streams from ("" for none)."""
    return cfg.stream.stage if cfg.stream is not None else ""


def write_hosted(run: Storage, stage: str, config_hash: str, doc: HostedStage) -> None:
    """The operator's word on a hosted stage (`config_hash`: its full or short hash), where its shared Job's
    workers read it."""
    run.write_bytes(hosted_key(stage, config_hash), doc.model_dump_json(by_alias=True).encode())


def started_hosted(run: Storage, stage: PlannedStage) -> bool:
    """The operator already wrote this stage's start (its workers may have run shards of it since)."""
    try:
        raw = run.read_at_most(hosted_key(stage.name, stage.config_hash), MAX_HOSTED_BYTES, "hosted stage")
        doc = HostedStage.model_validate_json(raw)
    except StorageLimit:
        raise  # the reconcile's read budget: read again next time
    except (StorageError, ValueError):
        return False
    return doc.config is not None and doc.config.config_hash == stage.config_hash
