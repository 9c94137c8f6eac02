"""relighting's `quality` bounds: a sample outside one is dropped by the last stage with
`QualityOutOfRange` (figure, value, bound); widening the bound brings it back by running the last stage
alone, nothing generated again. On `file://`: the same reuse on S3 is tests/storage/test_reuse_rules.py's
and test_local_runner.py's."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from genfab.storage import Storage
from tests.helpers import genfab_run
from tests.storage.ledger import status
from tests.storage.relighting_inputs import job, portraits


def stages(run: Storage) -> dict[str, Any]:
    return {s["name"]: s for s in json.loads(run.read_bytes("_genfab/summary.json"))["stages"]}


@pytest.mark.parametrize("target", ["file"], indirect=True)
def test_a_bound_drops_exactly_the_samples_outside_it_and_widening_it_generates_nothing_again(
        tmp_path: Any, target: tuple[str, dict[str, str], Storage]) -> None:
    uri, env, run = target
    folder = portraits(tmp_path)  # astronaut: maskArea about 0.40; hopper about 0.58
    strict = job(uri, folder, quality={"maskArea": {"max": 0.5}})
    strict["spec"]["continueOnError"] = False  # a filter at work, not an error: still PartiallySucceeded
    tight = genfab_run(tmp_path, strict, env=env)
    assert tight.returncode == 0, tight.stdout + tight.stderr
    assert status(run)["phase"] == "PartiallySucceeded"
    rows = list(csv.DictReader(io.StringIO(run.read_bytes("_genfab/dropped_samples.csv").decode())))
    assert [(r["stage"], r["sample_id"], r["reason"]) for r in rows] == [("organize", "hopper", "QualityOutOfRange")]
    assert rows[0]["message"].startswith("maskArea 0.5") and rows[0]["message"].endswith("above max 0.5")
    keys = {o.key for o in run.list("data/")}
    assert "data/stage_3_5/hopper_composite.png" in keys  # every earlier stage's output stays
    assert not any(k.startswith(("data/outputs/hopper", "data/raw/hopper")) for k in keys)
    meta = json.loads(run.read_bytes("data/outputs/astronaut_metadata.json"))
    assert meta["quality"]["maskArea"] < 0.5 and set(meta["quality"]) >= {"maskArea", "boundaryOnEdge", "holes",
                                                                          "saturationRatio", "darkLift"}
    assert stages(run)["organize"]["dropped"]["QualityOutOfRange"]["count"] == 1
    sheet = list(csv.DictReader(io.StringIO(run.read_bytes("_genfab/report/samples.csv").decode())))
    area = {r["sample"]: float(r["maskArea"]) for r in sheet}  # the figures as columns, the dropped one's too
    assert set(area) == {"astronaut", "hopper"} and area["astronaut"] == meta["quality"]["maskArea"]
    assert area["hopper"] > 0.5 and all(r["darkLift"] for r in sheet)

    wide = genfab_run(tmp_path, job(uri, folder, quality={"maskArea": {"max": 0.9}}), env=env)
    assert wide.returncode == 0, wide.stdout + wide.stderr
    assert status(run)["phase"] == "Succeeded"
    after = stages(run)
    for name in ("segment", "albedo", "degrade", "recombine"):  # nothing generated again
        assert (after[name]["reused"], after[name]["succeeded"]) == (2, 2), (name, after[name])
    assert after["organize"]["succeeded"] == 2  # the last stage alone ran again (its config holds the bounds)
    assert "data/outputs/hopper_output.png" in {o.key for o in run.list("data/outputs/")}


def test_an_unknown_figure_is_one_line_naming_the_near_miss(tmp_path: Any) -> None:
    folder = portraits(tmp_path, ("astronaut",))
    done = genfab_run(tmp_path, job(f"file://{tmp_path}/out", folder, quality={"straightRun": {"max": 60}}))
    assert done.returncode == 1, done.stdout + done.stderr  # the README: 1 for a spec it refuses
    said = (done.stdout + done.stderr).strip().splitlines()
    assert any("unknown figure 'straightRun' (did you mean 'straightRunPx'?)" in line for line in said), said
    assert not (tmp_path / "out").exists()
