"""A run's documents mutated as a hostile tenant or a broken disk would (values of other types, keys
missing, deep nesting, truncation, bytes that are not UTF-8, ragged CSV rows, log records of the wrong
shape), and every reading command run on each in-process: `status`, `status --json`, `logs`, `report`
and the review page's state. Each ends with exit 0, 1 or 2 and never with an exception; `report` is
always written (one malformed document is left out and named on its page, never the report's end). A
bounded number of seeded mutations, the same in every run."""

from __future__ import annotations

import copy
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from genfab.cli.main import cli
from tests.helpers import genfab_run
from tests.storage.ledger import inputs, job

MUTATIONS = 300
"""Mutated outputs, each read by every command (about 20 s on two cores)."""
ODD_VALUES: list[Any] = [None, 0, -1, 10**30, 1.5e308, "", "x" * 5000, [], {}, [1, "a"], {"a": [None]}, True, "\x1b[2J",
                         "../../etc/passwd", {"count": "many", "examples": 3}]


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*prefix, i))
    return out


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    node = doc
    for step in path[:-1]:
        node = node[step]
    if isinstance(node, dict) and rng_drop(path):
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return doc


def rng_drop(path: tuple[Any, ...]) -> bool:
    return hash(path) % 5 == 0


def mutate_json(raw: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    if kind == 0:
        return raw[: rng.randrange(len(raw))]  # truncated
    if kind == 1:
        return b"[" * 60_000 + b"]" * 60_000  # nested past the parser
    if kind == 2:
        return b"\xff\xfe" + raw[2:]  # not UTF-8
    doc = json.loads(raw)
    for _ in range(rng.randint(1, 4)):
        doc = replaced(doc, rng.choice(paths(doc)), rng.choice(ODD_VALUES))
    return json.dumps(doc).encode()


def mutate_csv(raw: bytes, rng: random.Random) -> bytes:
    lines = raw.decode().splitlines()
    choice = rng.randrange(3)
    if choice == 0:
        return "\n".join(line + ",extra,\x00" for line in lines).encode()
    if choice == 1:
        return "\n".join(line.split(",")[0] for line in lines).encode()  # ragged
    return b'"unclosed,quote\n' + raw


def mutate_log(raw: bytes, rng: random.Random) -> bytes:
    bad = [b'{"msg": 3, "ts": []}', b'{"msg": "m", "ts": "not a time", "stage": {"x": 1}}', b"[" * 5000,
           b'{"msg": "\\u001b]0;t\\u0007"}', b"\x00\xff", b'{"msg": "m", "shard": null, "level": 7}']
    return raw + b"\n" + b"\n".join(rng.sample(bad, k=3)) + b"\n"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    result = genfab_run(root, job("fuzzed", f"file://{root}/out", inputs(root, 5, bad=(3,))))
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "out"


def test_no_mutated_document_makes_a_command_raise(finished_run: Path, tmp_path: Path) -> None:
    rng = random.Random(79)
    runner = CliRunner()
    logs = sorted((finished_run / "_genfab/logs").rglob("shard-*.log"))
    assert logs
    outcomes: dict[int, int] = {}
    for n in range(MUTATIONS):
        out = tmp_path / f"m{n}"
        shutil.copytree(finished_run, out, symlinks=True)
        target = rng.choice(["status", "summary", "status", "summary", "csv", "log"])
        if target in ("status", "summary"):
            path = out / f"_genfab/{target}.json"
            path.write_bytes(mutate_json(path.read_bytes(), rng))
        elif target == "csv":
            path = out / "_genfab/dropped_samples.csv"
            path.write_bytes(mutate_csv(path.read_bytes(), rng))
        else:
            path = out / logs[0].relative_to(finished_run)
            path.write_bytes(mutate_log(path.read_bytes(), rng))
        for args in (["status", str(out)], ["status", "--json", str(out)], ["logs", str(out)],
                     ["report", str(out)]):
            result = runner.invoke(cli, args, catch_exceptions=True)
            assert result.exit_code in (0, 1, 2), (n, target, args, result.output[-2000:])
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                n, target, args, repr(result.exception), result.output[-2000:])
            assert "Traceback" not in result.output, (n, target, args, result.output[-2000:])
            if args[0] == "report":  # one document mutated at a time: the report stands on the rest
                assert result.exit_code == 0, (n, target, result.output[-2000:])
            outcomes[result.exit_code] = outcomes.get(result.exit_code, 0) + 1
        from genfab.selection.review import Review
        from genfab.storage import open_confined

        try:
            Review(open_confined(out.as_uri())).state()
        except (ValueError, OSError) as exc:  # the review command turns these into one line
            assert "\n" not in str(exc)
        shutil.rmtree(out)
    assert outcomes.get(0, 0) > 0 and outcomes.get(2, 0) > 0, outcomes  # both readable and refused ones seen
