"""What `genfab run` prints per stage reaches the reader as written: messages carry brackets
(`genfab[cv]`, `file://.../[x]`) that rich would otherwise take for markup and drop."""

from __future__ import annotations

import io

from rich.console import Console

from genfab.api import parse_resource
from genfab.local.stage_runs import StageRun
from genfab.local.view import ProgressView
from genfab.planner import plan
from tests.helpers import load_example


def test_a_stage_line_keeps_the_brackets_of_its_message() -> None:
    stage = plan(parse_resource(load_example("datasetjob-relighting.yaml"))).stages[0]
    message = "missing Python package 'albumentations': install genfab[cv] (pip install 'genfab[cv]')"
    run = StageRun(stage, samples=2, message=message)
    out = io.StringIO()
    with ProgressView(Console(file=out, force_terminal=False, width=200)) as view:
        view("start", run)
        view("end", run)
    assert "pip install 'genfab[cv]'" in out.getvalue() and "install genfab[cv] (" in out.getvalue()
