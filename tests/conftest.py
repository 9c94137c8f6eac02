"""Tiers are folders: tests/unit -> `unit`, tests/emulator -> `emulator`, and so on.

Across them, the `slow` tier: end-to-end runs of real pipelines (tens of seconds to minutes each,
listed in `SLOW`). The README's test command leaves them out; `pytest --slow` runs them too (CI
does), and a slow test named on the command line (`pytest tests/x.py::test_y`) always runs.

Order: pytest-randomly shuffles modules and the tests inside them on every run (the header prints
`--randomly-seed=N`; pass it to repeat an order, `-p no:randomly` to turn shuffling off). Every test
builds what it reads itself (module-scoped fixtures for shared expensive outputs, session fixtures for a
pipeline's one shared run), so any order and any single test pass. The tiers then run one after the
other, each in its shuffled order, so that a tier's package-scoped fixtures (the emulator's API server)
start once.

Both cores: `pytest -n 2` (pytest-xdist; CI runs it so). tests/xdist_scopes.py says which tests one
worker runs together (a server-backed tier, the chart tier, otherwise a module) so that their shared
servers and runs are made once. The work is handed out in collection order, which under xdist is longest
first as far as a folder says it (`_xdist_weight`): the API server tiers, then the modules that hold slow
tests, then the images tier (by then CI's background build of its images is over), then the storage, docs
and chart modules, then the unit modules, which fill the two workers' last minutes evenly.

Time: `--tier-budgets` fails the run when a tier's test seconds exceed its budget (tests/budgets.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from tests.budgets import BUDGETS, TierBudgets
from tests.made_once import CompletedRun, example_run
from tests.xdist_scopes import MODULE_SCOPES, SERVER_TIERS, TIER_SCOPES

TIERS = ("unit", "emulator", "realserver", "realcluster", "images", "storage", "chart", "docs", "gpu")
ROOT = Path(__file__).resolve().parent.parent

SLOW: frozenset[str] = frozenset({
    # whole modules: every test runs a pipeline end to end (or reads what one wrote)
    "tests/storage/test_tuning_run.py",
    "tests/storage/test_relighting_pipeline.py",
    "tests/storage/test_reuse_rules.py",
    "tests/storage/test_reference_object_run.py",
    # single tests
    "tests/storage/test_worldexplorer_scaffold.py::test_manual_selection_stops_at_the_gate_and_goes_on_once_final_is_complete",
    "tests/storage/test_worldexplorer_scaffold.py::test_automatic_selection_writes_the_eight_views_and_picks_by_clip",
    "tests/storage/test_worldexplorer_scaffold.py::test_fast_selection_keeps_one_candidate_and_a_theme_gives_the_rooms",
    "tests/storage/test_vistadream_pipeline.py::test_outpaint_then_depth_hand_on_the_seeds_two_frames",
    "tests/storage/test_vistadream_pipeline.py::test_no_outpaint_builds_the_input_frame_alone",
    "tests/storage/test_difix_pipeline.py::test_the_export_is_byte_identical_and_gitops_reruns_only_what_changed",
    "tests/storage/test_difix_pipeline.py::test_difix_run_writes_seed_002s_layout",
    "tests/storage/test_storage.py::test_listing_more_than_2000_keys_and_delete_prefix",
    "tests/storage/test_storage.py::test_transient_faults_are_retried_without_data_loss",
    "tests/storage/test_local_runner.py::test_reuse_redoes_deleted_or_changed_outputs_and_verify_catches_same_size_edits",
    "tests/storage/test_local_runner.py::test_custom_stages_run_end_to_end_and_a_failing_sample_is_recorded",
    "tests/storage/test_local_runner.py::test_a_killed_run_resumes_with_only_the_missing_samples",
    "tests/storage/test_local_runner.py::test_a_second_run_on_the_same_output_is_refused_while_the_first_holds_it",
    "tests/storage/test_difix_pipeline.py::test_fixed_reference_camera_with_a_frame_offset",
    "tests/storage/test_difix_pipeline.py::test_hi4d_layout_with_renders_from_a_folder",
    "tests/storage/test_vistadream_pipeline.py::test_a_missing_inpainter_fails_the_stage_naming_its_folder",
    "tests/docs/test_report_in_a_browser.py::test_a_tuning_runs_report_has_its_curves_and_each_checkpoints_grid",
    "tests/docs/test_report_in_a_browser.py::test_each_cpu_examples_report_opens",
})
"""Modules (`path`) and tests (`path::test`, parameters stripped) of the slow tier: on 2 cores each
test took over ~7 s (`pytest --durations=0`), together about three quarters of the whole run."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true",
                     help="also run the slow tier (end-to-end pipeline runs; CI runs them)")
    parser.addoption("--tier-budgets", action="store_true",
                     help="fail the run when a tier's test seconds exceed its budget (tests/budgets.py; CI)")


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):  # not on the GPU machine: its hook is unknown there
        config.pluginmanager.import_plugin("tests.xdist_scopes")
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist) adds up the reports
        config.pluginmanager.register(TierBudgets(BUDGETS, enforce=config.getoption("--tier-budgets")),
                                      "genfab-tier-budgets")


def _named(config: pytest.Config, item: pytest.Item) -> bool:
    """The test was asked for by its node id, not just collected from a folder or file."""
    return any("::" in arg and item.nodeid.startswith(arg.split("[")[0]) for arg in config.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, left_out = [], []
    parallel = hasattr(config, "workerinput")  # an xdist worker: its collection is the order work is handed out
    for item in items:
        if _tier_index(item) < len(TIERS):
            item.add_marker(getattr(pytest.mark, TIERS[_tier_index(item)]))
        if (item.nodeid.split("[")[0] in SLOW or item.nodeid.split("::")[0] in SLOW
                or item.get_closest_marker("slow") is not None):  # marked where it is defined
            item.add_marker(pytest.mark.slow)
            if not config.getoption("--slow") and not _named(config, item):
                left_out.append(item)
                continue
        keep.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
    if parallel:
        slow_files = {item.nodeid.split("::")[0] for item in keep if item.get_closest_marker("slow")}
        keep.sort(key=lambda item: _xdist_weight(item, slow_files))  # stable: shuffled within a class
    else:
        keep.sort(key=lambda item: _tier_index(item))  # stable: the shuffled order within each tier stays
    items[:] = keep


def _xdist_weight(item: pytest.Item, slow_files: set[str]) -> tuple[int, int]:
    """Longest first: xdist hands the scopes out in collection order (tests/xdist_scopes.py), and a long
    scope handed out last is the run's tail. The API server tiers, then modules with slow tests, then the
    images tier (late enough for CI's background build of its images to be over), then the other groups,
    then the unit tests."""
    tier = TIERS[_tier_index(item)] if _tier_index(item) < len(TIERS) else ""
    if tier == "images":
        rank = 2
    elif tier in SERVER_TIERS:
        rank = 0
    elif item.nodeid.split("::")[0] in slow_files:
        rank = 1
    elif tier in TIER_SCOPES | MODULE_SCOPES:
        rank = 3
    else:
        rank = 4
    return rank, _tier_index(item)


def _tier_index(item: pytest.Item) -> int:
    tier = Path(item.fspath).resolve().relative_to(ROOT / "tests").parts[0]
    return TIERS.index(tier) if tier in TIERS else len(TIERS)


REQUIRED = object()
ID_CHARS = 48
"""The longest id a table row gets from `pytest_make_parametrize_id`."""


def row_id(value: object) -> str | None:
    """A readable id for a table row's value that pytest would otherwise call `argname3`: a mapping's
    first items, a function's name, a path's name, a model's or dataclass's class and first field, a
    sequence's items; None for what pytest names well itself (text, numbers, None, booleans)."""
    if value is None or isinstance(value, str | int | float | bool):
        return None
    if isinstance(value, Path):
        return value.name
    if isinstance(value, bytes):
        return f"{len(value)}-bytes"
    if callable(value) and hasattr(value, "__name__") and not isinstance(value, type):
        return str(value.__name__).replace("<lambda>", "lambda")
    if isinstance(value, type):
        return value.__name__
    if dataclasses.is_dataclass(value) or isinstance(getattr(type(value), "model_fields", None), dict):
        return _fields(value)
    if isinstance(value, dict):
        return ",".join(f"{k}={_short(v)}" for k, v in list(value.items())[:3]) or "empty"
    if isinstance(value, set | frozenset):  # sorted: a set's order changes with each process's hash seed, and
        return "+".join(sorted(_short(v) for v in value)[:4]) or "none"  # xdist's workers must agree on ids
    if isinstance(value, list | tuple):
        return "+".join(_short(v) for v in list(value)[:4]) or "none"
    return type(value).__name__


def _fields(value: Any) -> str:
    """A dataclass's or pydantic model's fields that differ from their defaults (required ones by value,
    the others as `name=value`), the first four."""
    parts = []
    if dataclasses.is_dataclass(value):
        declared = [(f.name, f.default if f.default is not dataclasses.MISSING else REQUIRED)
                    for f in dataclasses.fields(value)]
    else:
        declared = [(name, REQUIRED if info.is_required() else info.default)
                    for name, info in type(value).model_fields.items()]
    for name, default in declared:
        current = getattr(value, name, None)
        if default is REQUIRED:
            parts.append(_short(current))
        elif current != default and not callable(current):
            parts.append(f"{name}={_short(current)}")
    return ",".join(parts[:4]) or type(value).__name__


def _short(value: object) -> str:
    text = row_id(value) if not isinstance(value, str | int | float | bool) and value is not None else str(value)
    return (text or type(value).__name__)[:16]


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Table rows named by what they hold (`phase=Failed,samples=3`), not by position (`doc3`): a failing
    row says which it is. A table's own `ids=` still wins."""
    text = row_id(val)
    return text[:ID_CHARS] if text else None


@pytest.fixture(scope="session")
def main_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CompletedRun]:
    """The README's main job (`genfab run examples/datasetjob-relighting.yaml`), run once a session: the
    folder it ran in (output under `genfab-runs/relight-portraits/`) and its result. Read-only."""
    return example_run(tmp_path_factory, "datasetjob-relighting.yaml")


@pytest.fixture(scope="session")
def difix_local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CompletedRun]:
    """`genfab run examples/datasetjob-difix-local.yaml` (the CPU difix export), run once a session: the
    folder it ran in (output under `genfab-runs/difix-procedural/`) and its result. Read-only."""
    return example_run(tmp_path_factory, "datasetjob-difix-local.yaml")
