"""Pure status aggregation (shared by the operator and the local runner): table tests."""

from __future__ import annotations

from typing import Any

import pytest

from genfab.status import StageObservation, build_status, set_condition, stage_phase

NOW = "2026-11-22T10:00:00Z"


def obs(name: str, state: str, **counts: Any) -> StageObservation:
    return StageObservation(name=name, config_hash="h" * 64, output_uri=f"file://out/{name}",
                            state=state, **counts)  # type: ignore[arg-type]


@pytest.mark.parametrize(("observation", "continue_on_error", "phase"), [
    (obs("a", "skipped"), False, "Skipped"),
    (obs("a", "waiting"), False, "Waiting"),
    (obs("a", "blocked"), False, "Pending"),
    (obs("a", "suspended"), False, "Suspended"),
    (obs("a", "running", samples_total=4, samples_succeeded=1), False, "Running"),
    (obs("a", "finished", samples_total=4, samples_succeeded=4, shards_total=1, shards_succeeded=1), False,
     "Succeeded"),
    (obs("a", "finished", samples_total=4, samples_succeeded=3, samples_failed=1), False, "Failed"),
    (obs("a", "finished", samples_total=4, samples_succeeded=3, samples_failed=1), True, "PartiallySucceeded"),
    (obs("a", "finished", shards_total=2, shards_failed=1), True, "Failed"),
    # the spec's own filter (QualityOutOfRange) at work is not an error
    (obs("a", "finished", samples_total=4, samples_succeeded=3, samples_failed=1, samples_filtered=1), False,
     "PartiallySucceeded"),
    (obs("a", "finished", samples_total=4, samples_succeeded=2, samples_failed=2, samples_filtered=1), False,
     "Failed"),
])
def test_stage_phase(observation: StageObservation, continue_on_error: bool, phase: str) -> None:
    assert stage_phase(observation, continue_on_error) == phase


@pytest.mark.parametrize(("observations", "coe", "suspended", "phase", "current", "progress"), [
    ([obs("a", "waiting"), obs("b", "waiting")], False, False, "Pending", None, None),
    ([obs("a", "running", samples_total=120, samples_succeeded=37), obs("b", "waiting")], False, False,
     "Running", "a", "37/120"),
    ([obs("a", "finished", samples_total=3, samples_succeeded=3), obs("b", "waiting")], False, False,
     "Running", "a", "3/3"),
    ([obs("a", "finished", samples_total=3, samples_succeeded=3),
      obs("b", "finished", samples_total=3, samples_succeeded=3)], False, False, "Succeeded", "b", "3/3"),
    ([obs("a", "finished", samples_total=3, samples_succeeded=2, samples_failed=1),
      obs("b", "finished", samples_total=2, samples_succeeded=2)], True, False, "PartiallySucceeded", "b", "2/2"),
    ([obs("a", "finished", samples_total=3, samples_succeeded=2, samples_failed=1), obs("b", "blocked")],
     False, False, "Failed", "a", "2/3"),
    ([obs("a", "skipped"), obs("b", "finished", samples_total=1, samples_succeeded=1)], False, False,
     "Succeeded", "b", "1/1"),
    ([obs("a", "suspended"), obs("b", "waiting")], False, True, "Suspended", "a", "0/0"),
])
def test_resource_phase_current_stage_and_progress(observations: list[StageObservation], coe: bool,
                                                   suspended: bool, phase: str, current: str | None,
                                                   progress: str | None) -> None:
    status = build_status(observations, continue_on_error=coe, generation=3, now=NOW, suspended=suspended)
    assert (status.phase, status.current_stage, status.progress) == (phase, current, progress)
    assert status.observed_generation == 3
    conditions = {c.type: c.status for c in status.conditions}
    assert conditions["Running"] == ("True" if phase == "Running" else "False")
    if phase in ("Succeeded", "PartiallySucceeded", "Failed"):
        assert conditions["Succeeded"] == ("False" if phase == "Failed" else "True")
        assert conditions["Failed"] == ("True" if phase == "Failed" else "False")
        assert status.completion_time is not None
    else:
        assert "Succeeded" not in conditions and status.completion_time is None


WHY = "interrupted by SIGTERM; run the same command again to continue"


@pytest.mark.parametrize(("observations", "phase", "stopped"), [
    ([obs("a", "waiting"), obs("b", "waiting")], "Failed", []),  # before any stage started
    ([obs("a", "finished", samples_total=3, samples_succeeded=3),
      obs("b", "running", samples_total=4, samples_succeeded=1), obs("c", "waiting")], "Failed", ["b"]),
    ([obs("a", "running", samples_total=4), obs("b", "running", samples_total=2)], "Failed", ["a", "b"]),
    ([obs("a", "finished", samples_total=3, samples_succeeded=3)], "Succeeded", []),  # it had ended anyway
])
def test_an_interrupted_run_is_failed_everywhere_it_shows(observations: list[StageObservation], phase: str,
                                                          stopped: list[str]) -> None:
    status = build_status(observations, continue_on_error=False, generation=1, now=NOW, interrupted=WHY)
    conditions = {c.type: c for c in status.conditions}
    assert status.phase == phase and conditions["Running"].status == "False"
    assert not any(s.phase == "Running" for s in status.stages)
    assert [s.name for s in status.stages if s.reason == "Interrupted"] == stopped
    assert all(s.phase == "Failed" and s.message == WHY for s in status.stages if s.name in stopped)
    if phase == "Failed":
        assert (conditions["Failed"].status, conditions["Failed"].reason, conditions["Failed"].message) == (
            "True", "Interrupted", WHY)
        assert conditions["Succeeded"].status == "False" and status.completion_time is not None


def test_transition_time_moves_only_when_the_condition_flips() -> None:
    conds = set_condition([], "Running", True, "StageRunning", "a: 1/4", "t1", 1)
    conds = set_condition(conds, "Running", True, "StageRunning", "a: 2/4", "t2", 1)
    assert (conds[0].last_transition_time, conds[0].message) == ("t1", "a: 2/4")
    conds = set_condition(conds, "Running", False, "Succeeded", "", "t3", 2)
    assert (conds[0].status, conds[0].last_transition_time, conds[0].observed_generation) == ("False", "t3", 2)
    assert len(conds) == 1


def test_notes_message_is_the_first_note_and_fits_the_status() -> None:
    from genfab.status import notes_message
    from genfab.status.aggregate import MAX_STAGE_MESSAGE

    assert notes_message([]) is None
    assert notes_message(["a: x"]) == "a: x"
    long = notes_message(["a: " + "y" * 10_000, "b: z"])
    assert long is not None and len(long) <= MAX_STAGE_MESSAGE and long.endswith("... (+1 more in the shard reports)")


def test_a_stage_a_custom_stage_makes_says_so_and_the_others_do_not() -> None:
    from genfab.api.status import CustomStageStatus

    made = CustomStageStatus(image="lab/matte:3", replaces=True)
    status = build_status([obs("segment", "running", samples_total=4), obs("albedo", "waiting")],
                          continue_on_error=False, generation=1, now=NOW, custom={"segment": made})
    by_name = {s.name: s for s in status.stages}
    assert by_name["segment"].custom == made and by_name["albedo"].custom is None
    assert status.to_yaml_dict()["stages"][0]["custom"] == {"image": "lab/matte:3", "replaces": True}
    assert "custom" not in status.to_yaml_dict()["stages"][1]


@pytest.mark.parametrize(("failed", "filtered", "coe", "gated"), [
    (1, 1, False, "Succeeded"),  # only the filter dropped: downstream stages run
    (2, 1, True, "PartiallySucceeded"),
    (2, 1, False, "Failed"),
    (0, 0, False, "Succeeded"),
])
def test_a_stage_whose_only_drops_are_filtered_passes_the_gate(failed: int, filtered: int, coe: bool,
                                                                 gated: str) -> None:
    from genfab.sequencing import phase_of
    o = obs("a", "finished", samples_total=4, samples_succeeded=4 - failed, samples_failed=failed,
            samples_filtered=filtered, shards_total=1, shards_succeeded=1)
    assert phase_of(o, coe) == gated


def test_filtered_count_reads_the_filter_reasons_of_a_tally() -> None:
    from genfab.api.status import DropTally, ShardTally
    from genfab.status import filtered_count
    tally = ShardTally(dropped={"QualityOutOfRange": DropTally(count=3), "SampleError": DropTally(count=2)})
    assert filtered_count(tally) == 3 and filtered_count(None) == 0
