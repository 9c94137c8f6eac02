"""`genfab status`, `genfab logs` and `genfab report` on a finished run, from another process, on file://
and S3 (moto): the phase, each stage's counts, the drops by reason, where the data is, readable log
lines, and the report written into the output itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from genfab.storage import Storage
from tests.helpers import ROOT, genfab_run
from tests.storage.ledger import inputs, job


def genfab(tmp: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    paths = os.pathsep.join(str(ROOT / p) for p in ("operator", "stages", ""))
    return subprocess.run([sys.executable, "-m", "genfab.cli.main", *args], capture_output=True, text=True,
                          cwd=tmp, env={**os.environ, **env, "PYTHONPATH": paths}, timeout=60)


def test_status_and_logs_of_a_run_from_another_terminal(
        tmp_path: Path, target: tuple[str, dict[str, str], Storage]) -> None:
    uri, env, store = target
    result = genfab_run(tmp_path, job("ledger", uri, inputs(tmp_path, 5, bad=(3,))), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"data:    {uri}" in result.stdout and f"genfab status {uri}" in result.stdout
    written = next(line for line in result.stdout.splitlines() if line.startswith("report:  "))
    assert "_genfab/report/index.html (" in written, written  # the run wrote its report at the end

    store.delete_prefix("_genfab/report/")
    report = genfab(tmp_path, env, "report", uri)
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines()[0].endswith("_genfab/report/index.html")
    page = store.read_bytes("_genfab/report/index.html").decode()
    assert "DatasetJob/ledger" in page and "PartiallySucceeded" in page and "BadContent" in page and "img_003" in page
    assert store.exists("_genfab/report/samples.csv")

    shown = genfab(tmp_path, env, "status", uri)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("DatasetJob/ledger: PartiallySucceeded"), lines[0]
    segment = next(line.split() for line in lines if line.strip().startswith("segment "))
    assert segment[:4] == ["segment", "PartiallySucceeded", "4/5", "1"]
    assert f"data: {uri}" in lines
    assert any(line.startswith("dropped: 1 sample(s) in ") for line in lines)
    assert "  segment: 1 BadContent (e.g. img_003)" in lines

    logs = genfab(tmp_path, env, "logs", uri, "segment", "--shard", "1")
    assert logs.returncode == 0, logs.stderr
    readable = [line for line in logs.stdout.splitlines() if not line.startswith("---")]
    assert readable and not any(line.startswith("{") for line in readable)  # no raw JSON records
    assert any(" segment[1] " in line and "shard starts" in line for line in readable)

    unknown = genfab(tmp_path, env, "logs", uri, "nosuch")
    assert unknown.returncode == 2 and "no stage 'nosuch' in this run (stages: segment, albedo" in unknown.stderr
    for command in ("status", "report"):
        nothing = genfab(tmp_path, env, command, str(tmp_path / "empty"))
        assert nothing.returncode == 2 and nothing.stderr.count("\n") == 1 and "no genfab run there" in nothing.stderr


def test_logs_read_no_fifo_no_device_no_link_and_no_folder_a_remote_status_names(tmp_path: Path) -> None:
    """`genfab logs` on a local output whose log folder holds a FIFO, a link to /dev/zero and a link to a
    file outside: each is skipped with one line, never waited on or read without end; a remote status
    whose metadata.name is a path gives one line and derives no folder from it."""
    uri = f"file://{tmp_path}/out"
    result = genfab_run(tmp_path, job("ledger", uri, inputs(tmp_path, 3)), env={})
    assert result.returncode == 0, result.stdout + result.stderr
    logs = tmp_path / "out/_genfab/logs/segment"
    os.mkfifo(logs / "shard-00007.log")
    (logs / "shard-00008.log").symlink_to("/dev/zero")
    (tmp_path / "outside.log").write_text('{"msg": "from outside"}\n')
    (logs / "shard-00009.log").symlink_to(tmp_path / "outside.log")
    shown = genfab(tmp_path, {}, "logs", uri, "segment")
    assert shown.returncode == 0, shown.stderr
    assert "shard starts" in shown.stdout and "from outside" not in shown.stdout
    skipped = [line for line in shown.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 3 and all(line.startswith("genfab logs: ") for line in skipped), shown.stderr

    from genfab.cli.follow import log_dir

    with pytest.raises(ValueError, match="is not a Kubernetes name"):  # what a remote status.json may say
        log_dir("s3://bucket/run", "../../../etc")
    assert log_dir("s3://bucket/run", "relight-portraits") == Path("genfab-runs/.logs/relight-portraits")
