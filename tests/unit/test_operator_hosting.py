"""Stages that share a worker on a cluster, decided (genfab.operator.hosting): vistadream's outpaint, depth and
coarse (holder coarse) run in outpaint's worker Job; depth and coarse get no Job of their own."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate

from genfab.api import parse_resource
from genfab.api.status import ResourceStatus
from genfab.operator.decide import Observed, Progress, decide, hostable
from genfab.operator.hosting import Hosted, hosted_annotation, hosted_on, hosts
from genfab.operator.observe import job_view
from genfab.planner import Plan, plan
from tests.helpers import load_example
from tests.unit.shared import NOW


def vistadream(**spec: Any) -> tuple[Any, Plan]:
    doc = load_example("scenejob-vistadream.yaml")
    doc["spec"].update(spec)
    r = parse_resource(doc)
    return r, plan(r)


def shared_job(p: Plan, status: dict[str, Any], hosted: dict[str, Hosted] | None = None,
               hosted_hash: str | None = None) -> dict[str, Any]:
    s = p.stage("outpaint")
    listed = f"depth@{hosted_hash or p.stage('depth').short_hash},coarse@{p.stage('coarse').short_hash}"
    notes = {"genfab.dev/samples": "4", "genfab.dev/shards": "4", "genfab.dev/hosts": listed,
             **{hosted_annotation(name): h.to_json() for name, h in (hosted or {}).items()}}
    return {"metadata": {"name": f"{p.name}-outpaint-{s.short_hash}", "annotations": notes, "uid": "u1",
                         "labels": {"genfab.dev/stage": "outpaint", "genfab.dev/config-hash": s.short_hash}},
            "spec": {"completions": 2, "parallelism": 2}, "status": status}


def test_the_groups_first_stage_hosts_the_members_that_have_not_started() -> None:
    r, p = vistadream()
    d = decide(p, r.spec, Observed(), None, NOW)
    assert d.start == ["outpaint"] and d.hosting == {"outpaint": ["depth", "coarse"]}
    ran = ResourceStatus.model_validate({"phase": "Running", "stages": [
        {"name": "coarse", "phase": "Succeeded", "configHash": p.stage("coarse").config_hash,
         "outputUri": "s3://x", "jobName": "earlier"}]})
    assert hostable(p, p.stage("outpaint"), {}, {s.name: s for s in ran.stages}) == ["depth"]


def test_a_member_starts_in_the_running_shared_job_and_is_seen_through_it() -> None:
    r, p = vistadream()
    running = shared_job(p, {"active": 2, "ready": 2})
    d = decide(p, r.spec, Observed(jobs=[running], progress={
        "outpaint": Progress(succeeded=1, shards=(1, 0), finished=((0, 0),))}), None, NOW)
    name = running["metadata"]["name"]
    assert d.start == ["depth"] and d.hosted_starts == {"depth": name}
    depth = Hosted(p.stage("depth").config_hash, 4, 4, "outpaint")
    hosting = shared_job(p, {"active": 2, "ready": 2}, {"depth": depth})
    assert hosted_on(hosting) == {"depth": depth}
    assert hosts(hosting) == (("depth", p.stage("depth").short_hash), ("coarse", p.stage("coarse").short_hash))
    view = job_view(hosting, "depth")
    assert (view.name, view.shards, view.samples, view.streams_from, view.workers, view.hosted) == (
        name, 4, 4, "outpaint", 2, True)
    d = decide(p, r.spec, Observed(jobs=[hosting], progress={
        "outpaint": Progress(succeeded=2, shards=(2, 0), finished=((0, 1),)),
        "depth": Progress(succeeded=1, shards=(1, 0), finished=((0, 0),))}), None, NOW)
    obs = {o.name: o for o in d.observations}
    assert d.start == ["gaussians"] and obs["depth"].state == "running" and obs["depth"].job_name == name
    assert [(s.stage, s.ready, s.parallelism) for s in d.streams] == [("depth", 2, None)]  # not the shared Job's


def test_a_member_that_will_not_start_is_marked_stopped_for_the_shared_workers() -> None:
    """gaussians (not a member) failed: coarse, hosted by outpaint's Job and not started, will not run."""
    r, p = vistadream()
    depth = Hosted(p.stage("depth").config_hash, 4, 4, "outpaint")
    hosting = shared_job(p, {"active": 1, "ready": 1}, {"depth": depth})
    g = p.stage("gaussians")
    failed = {"metadata": {"name": f"{p.name}-gaussians-{g.short_hash}", "annotations": {
        "genfab.dev/samples": "4", "genfab.dev/shards": "4", "genfab.dev/streams-from": "depth"},
        "labels": {"genfab.dev/stage": "gaussians", "genfab.dev/config-hash": g.short_hash}},
        "spec": {"completions": 2, "parallelism": 2},
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "FailedIndexes"}]}}
    d = decide(p, r.spec, Observed(jobs=[hosting, failed], progress={
        "outpaint": Progress(succeeded=4, shards=(4, 0), finished=((0, 3),)),
        "depth": Progress(succeeded=4, shards=(4, 0), finished=((0, 3),)),
        "gaussians": Progress(succeeded=0, failed=4, shards=(0, 4), finished=((0, 3),))}), None, NOW)
    assert d.stop_hosted == [("coarse", p.stage("coarse").short_hash)] and "coarse" not in d.start


def test_a_worker_busy_with_a_hosted_stages_shard_is_not_stuck() -> None:
    """outpaint's worker 0 committed no outpaint sample for two hours, but its depth shard did a minute
    ago: no Pod is stopped for no progress."""
    r, p = vistadream()
    depth = Hosted(p.stage("depth").config_hash, 4, 4, "outpaint")
    hosting = shared_job(p, {"active": 1, "ready": 1}, {"depth": depth})
    now = NOW.timestamp()
    pod = {"metadata": {"name": "w0", "labels": {"batch.kubernetes.io/job-completion-index": "0"}},
           "status": {"phase": "Running", "containerStatuses": [{"state": {"running": {
               "startedAt": "2026-01-01T00:00:00Z"}}}]}}
    observed = Observed(jobs=[hosting], pods={hosting["metadata"]["name"]: [pod]}, progress={
        "outpaint": Progress(succeeded=4, shards=(4, 0), finished=((0, 3),), last_sample={0: now - 7200},
                             busy_workers=frozenset()),
        "depth": Progress(succeeded=1, shards=(1, 0), finished=((0, 0),), last_sample={0: now - 60},
                          worker_shards={0: 1}, busy_workers=frozenset({0}))})
    d = decide(p, r.spec, observed, None, NOW)
    assert d.stop_pods == []
    alone = Observed(jobs=[hosting], pods=observed.pods, progress={"outpaint": observed.progress["outpaint"]})
    assert [why for _, _, why in decide(p, r.spec, alone, None, NOW).stop_pods]  # without it, it would be stopped
    assert json.loads(hosting["metadata"]["annotations"]["genfab.dev/hosted.depth"])["streamsFrom"] == "outpaint"


def test_the_shared_job_runs_in_the_holders_image_and_resources_and_names_what_it_hosts() -> None:
    from genfab.operator.builders import build_job
    from genfab.planner import stage_config
    from tests.unit.shared import OWNER, SETTINGS

    r, p = vistadream(parallelism=2)
    outpaint, coarse = p.stage("outpaint"), p.stage("coarse")
    job = build_job(p, outpaint, stage_config(p, outpaint), r.spec, 4, 4, OWNER, SETTINGS,
                    hosting=[p.stage("depth"), coarse])
    kubernetes_validate.validate(job, "1.35", strict=True)
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert json.loads(env["GENFAB_HOSTED"]) == [{"stage": name, "configHash": p.stage(name).config_hash}
                                                for name in ("depth", "coarse")]
    assert env["GENFAB_WORKERS"] == "2" and env["GENFAB_WAITING_FILE"] and "readinessProbe" in container
    assert job["metadata"]["annotations"]["genfab.dev/hosts"] == ",".join(
        f"{name}@{p.stage(name).short_hash}" for name in ("depth", "coarse"))
    alone = build_job(p, coarse, stage_config(p, coarse), r.spec, 4, 4, OWNER, SETTINGS)
    holder = alone["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["resources"]) == (holder["image"], holder["resources"])
    plain = build_job(p, outpaint, stage_config(p, outpaint), r.spec, 4, 4, OWNER, SETTINGS)
    assert "GENFAB_HOSTED" not in {e["name"] for e in plain["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert plain["spec"]["template"]["spec"]["containers"][0]["resources"] != container["resources"]


def test_a_start_cut_short_is_known_so_what_its_workers_ran_is_kept(tmp_path: Any) -> None:
    from genfab.contract.hosted import HostedStage
    from genfab.operator.hosting import started_hosted, write_hosted
    from genfab.planner import stage_config
    from genfab.storage import open_storage

    _, p = vistadream()
    run, depth = open_storage(f"file://{tmp_path}"), p.stage("depth")
    assert not started_hosted(run, depth)
    write_hosted(run, "depth", depth.config_hash, HostedStage(stopped="its upstream failed"))
    assert not started_hosted(run, depth)  # stopped, never started
    write_hosted(run, "depth", depth.config_hash, HostedStage(config=stage_config(p, depth, 4), shards=4))
    assert started_hosted(run, depth) and not started_hosted(run, p.stage("coarse"))


def test_a_member_whose_config_changed_is_no_longer_hosted_and_its_old_config_is_stopped() -> None:
    """depth's settings changed after the shared Job started (a GitOps edit): the Job's workers stop waiting
    for (or taking shards of) depth under its old config, and the new depth runs as a Job of its own."""
    r, p = vistadream()
    running = shared_job(p, {"active": 2, "ready": 2}, hosted_hash="0123456789")
    d = decide(p, r.spec, Observed(jobs=[running], progress={
        "outpaint": Progress(succeeded=1, shards=(1, 0), finished=((0, 0),))}), None, NOW)
    assert d.stop_hosted == [("depth", "0123456789")]
    assert d.start == ["depth"] and d.hosted_starts == {}
