"""`GroupFeed`: the shards of a shared worker Pod on a cluster, the first member's Job of a group of stages
that load the same models (`PlannedStage.shares_worker`: vistadream's outpaint, depth and coarse). The
Job's `GENFAB_HOSTED` names the other members; its workers take the shards of all of them, each from
that stage's own cursor with that stage's own records, retries and reports (genfab.stages.runtime.claims),
so nothing of a stage's contract changes with the process it runs in. A member's config and shard count
come when the operator starts it (`hosted_key`: what a Job of its own would have mounted); until then its
shards wait, as a streaming stage's wait for committed input.

A worker tries the members downstream first (coarse before depth before outpaint), so a sample goes on
through the chain while its models are loaded and the intermediates between the members do not pile up.
It waits when no member has a shard to take now, saying so once on its first member's record and by the
Pod's waiting file (the operator's release and no-progress checks read them), and it ends once every
member's shards are taken, or the operator said the member will not run."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from genfab.contract import EXIT_BAD_INPUT
from genfab.contract.hosted import MAX_HOSTED_BYTES, HostedMember, HostedStage, parse_members
from genfab.contract.names import ENV_CONFIG, ENV_HOSTED, ENV_SAMPLE_MANIFEST, ENV_SHARDS, hosted_key
from genfab.inventory.workers import WAIT
from genfab.stages.runtime.claims import INPUT_POLL_SECONDS, ClaimFeed, claim_feed
from genfab.stages.runtime.context import StageContext, load_context
from genfab.stages.runtime.errors import BadInput
from genfab.stages.runtime.logs import configure
from genfab.stages.runtime.shared import SharedAssignment, serve
from genfab.storage import StorageError, StorageTooLarge

log = logging.getLogger("genfab.stages")


class GroupFeed:
    def __init__(self, ctx: StageContext, members: list[HostedMember], poll_seconds: float = INPUT_POLL_SECONDS
                 ) -> None:
        self.ctx = ctx
        self.host = claim_feed(ctx, marks_waiting=False)
        """The Pod's own stage (its config mounted): says when the worker waits, for all its stages."""
        self.members = members
        self.poll_seconds = poll_seconds
        self.feeds: dict[str, ClaimFeed] = {ctx.stage: self.host}
        self.envs: dict[str, dict[str, str]] = {ctx.stage: {}}
        """Each started stage's environment over the process's (a hosted one's config file and shards)."""
        self.order = [ctx.stage, *(m.stage for m in members)]
        self.stopped: set[str] = set()
        self.taken: set[str] = set()
        """Stages whose cursor has no shard left."""
        self._looked = float("-inf")

    def __iter__(self) -> Iterator[SharedAssignment]:
        while (taken := self.next()) is not None:
            if taken == WAIT:
                time.sleep(self.poll_seconds)
                continue
            yield taken

    def next(self) -> SharedAssignment | Literal["wait"] | None:
        """The next shard of any member, downstream first; `WAIT` while none can be taken now but some
        member may still have one; None once every member's shards are taken or it will not run."""
        self._look_for_started()
        for stage in reversed(self.order):
            feed = self.feeds.get(stage)
            if feed is None or stage in self.taken or stage in self.stopped:
                continue
            got = feed.next()
            if got is None:
                self.taken.add(stage)
            elif got != WAIT:
                self._waiting(False, saved_with_shard=feed is self.host)
                return SharedAssignment(stage, self.envs[stage], got)
        if all(stage in self.taken or stage in self.stopped for stage in self.order):
            self._waiting(False, saved_with_shard=False)
            return None
        self._waiting(True, saved_with_shard=False)
        return WAIT

    def done(self, assignment: SharedAssignment, code: int) -> None:
        self.feeds[assignment.stage].done(assignment.shard, code)

    def continues_after(self, code: int) -> bool:
        return self.host.continues_after(code)

    def close(self) -> None:
        """Nothing is held."""

    def _waiting(self, waits: bool, saved_with_shard: bool) -> None:
        was = self.host.record.waiting_since is not None
        self.host.mark_waiting(waits)
        if was and not waits and not saved_with_shard:  # another member's shard: the record says it is busy
            self.host._save()

    def _look_for_started(self) -> None:
        """Read, at most every `poll_seconds`, whether the members not started yet started, and whether the
        operator stopped one (its upstream failed: what it committed stays, its workers take no more)."""
        pending = [m for m in self.members if m.stage not in self.stopped and m.stage not in self.taken]
        if not pending or time.monotonic() - self._looked < self.poll_seconds:
            return
        self._looked = time.monotonic()
        for member in pending:
            doc = self._read(member)
            if doc is None:
                continue
            if doc.stopped:
                log.info("hosted stage stopped", extra={"hosted": member.stage, "why": doc.stopped})
                self.stopped.add(member.stage)  # a shard of it running now ends as it would
            elif member.stage not in self.feeds:
                self._start(member, doc)

    def _read(self, member: HostedMember) -> HostedStage | None:
        key = hosted_key(member.stage, member.config_hash)
        run = self.ctx.run_storage
        try:
            raw = run.read_at_most(key, MAX_HOSTED_BYTES, "hosted stage")
        except StorageTooLarge:
            raise BadInput(f"{run.child(key)} is over {MAX_HOSTED_BYTES >> 10} KiB: not what the operator "
                           "writes") from None
        except StorageError as exc:
            if str(exc).startswith("not found"):
                return None  # not started yet
            raise
        try:
            doc = HostedStage.model_validate_json(raw)
        except (ValidationError, ValueError) as exc:
            raise BadInput(f"{run.child(key)} is not what the operator writes: {exc}") from None
        cfg = doc.config
        if not doc.stopped and (cfg is None or (cfg.stage, cfg.config_hash, cfg.run_uri, cfg.pipeline) != (
                member.stage, member.config_hash, self.ctx.cfg.run_uri, self.ctx.cfg.pipeline) or doc.shards < 1):
            raise BadInput(f"{run.child(key)} is not the config of stage {member.stage} of this run the "
                           f"operator started (GENFAB_HOSTED names config hash {member.config_hash[:10]})")
        return doc

    def _start(self, member: HostedMember, doc: HostedStage) -> None:
        """A hosted stage's config as a file of its own, and its shards' feed."""
        assert doc.config is not None
        path = Path(self.ctx.workdir) / "hosted" / f"{member.stage}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(doc.config.to_json())
        env = {ENV_CONFIG: str(path), ENV_SHARDS: str(doc.shards),
               **({ENV_SAMPLE_MANIFEST: "1"} if doc.manifest else {})}
        self.envs[member.stage] = env
        self.feeds[member.stage] = claim_feed(self.ctx, marks_waiting=False, cfg=doc.config, shards=doc.shards)
        log.info("hosted stage started", extra={"hosted": member.stage, "shards": doc.shards})



def host_group(env: Mapping[str, str] | None = None) -> int:
    """A shared worker Pod (`GENFAB_HOSTED` set): its own stage's shards and its hosted stages', each stage
    set up once (genfab.stages.runtime.shared.serve); the exit code as a worker Pod's."""
    environ = dict(os.environ if env is None else env)
    try:
        members = parse_members(environ.get(ENV_HOSTED, ""))
    except (ValueError, ValidationError) as exc:
        configure({"worker": "shared"})
        log.error("bad stage contract: %s=%r is not the operator's list of hosted stages (%s)", ENV_HOSTED,
                  environ.get(ENV_HOSTED, "")[:200], exc)
        return EXIT_BAD_INPUT
    try:
        ctx = load_context(environ)
        feed = GroupFeed(ctx, members)
    except BadInput as exc:
        configure({"worker": "shared"})
        log.error("bad stage contract: %s", exc)
        return EXIT_BAD_INPUT
    try:
        return serve(feed, environ)
    finally:
        if "workdir" in ctx.__dict__:
            shutil.rmtree(ctx.workdir, ignore_errors=True)
