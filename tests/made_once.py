"""What the test session makes once and every test reads: tiny models (machine-wide, kept between sessions)
and a pipeline's one `genfab run` (once per session, whichever xdist worker asks first).

- `tiny_models("save_vistadream_models")`: the folder `scripts/tiny_models.py`'s saver writes, made once per
  machine under `~/.cache/genfab/tiny-models/<key>/` (GENFAB_TOOLS_CACHE moves it), the key a hash of the
  script and the saver's name and arguments: a change to the script makes new ones, a session after the
  first reads them in no time. Read-only for the tests: a test that adds files copies it first (`copy_of`).
- `session_run(factory, name, make)`: `make(folder)` runs once per session (under xdist: once for both
  workers, the second waits for the first), in a folder every test of the session reads; a test whose
  subject is a second run over that output (resume, reuse after a change, a rerun token) runs it on a copy.

Both make the folder under a file lock and mark it done when complete (`<folder>.done`), so a folder a
killed session left half-made is made again, never taken for done.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_job_file

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("GENFAB_TOOLS_CACHE", Path.home() / ".cache" / "genfab"))
TINY_SCRIPT = ROOT / "scripts" / "tiny_models.py"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def made_once(dest: Path, make: Callable[[Path], object]) -> Path:
    """`dest`, made by `make(dest)` by the first caller of any process; the others wait for it. Made in
    place (what it writes may record its own path), then marked done (`<dest>.done` beside it): a folder
    without its mark is what a killed maker left, and is made again."""
    done = dest.parent / f"{dest.name}.done"
    if done.exists():
        return dest
    with _locked(dest.parent / f".{dest.name}.lock"):
        if done.exists():
            return dest
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        try:
            make(dest)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        done.touch()
    return dest


def tiny_key(saver: str, **kwargs: object) -> str:
    text = TINY_SCRIPT.read_bytes() + json.dumps([saver, kwargs], sort_keys=True).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def tiny_models(saver: str, **kwargs: object) -> Path:
    """The folder `scripts.tiny_models.<saver>(folder, **kwargs)` writes, made once per machine."""
    def make(folder: Path) -> None:
        import scripts.tiny_models as tiny

        getattr(tiny, saver)(folder, **kwargs)

    return made_once(CACHE / "tiny-models" / tiny_key(saver, **kwargs) / saver, make)


def copy_of(folder: Path, into: Path) -> Path:
    """A writable copy of a shared folder (real copies, not links: `write_bytes` on a hard link would
    write through it into the shared original)."""
    shutil.copytree(folder, into, symlinks=True)
    return into


def session_folder(factory: pytest.TempPathFactory) -> Path:
    """The folder both xdist workers of a session share (each worker's base temp is a child of it)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def session_run(factory: pytest.TempPathFactory, name: str, make: Callable[[Path], object]) -> Path:
    """`make(folder)` once per session, whichever worker asks first; the folder it filled."""
    return made_once(session_folder(factory) / "made-once" / name, make)


def run_example(folder: Path, name: str, *args: str, models: Path | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`genfab run examples/<name>` as a user runs it from the repository root (a folder that sees
    `examples/`, outputs under its `genfab-runs/`), 2 workers; `models` sets `spec.models.uri`. The
    result is kept beside the output (`result.json`), so a later reader gets the same answer."""
    if not (folder / "examples").exists():
        (folder / "examples").symlink_to(ROOT / "examples")
    job = f"examples/{name}"
    if models is not None:
        doc = yaml.safe_load((ROOT / "examples" / name).read_text())
        doc["spec"]["models"]["uri"] = models.as_uri()
        job = f"{name.removesuffix('.yaml')}-models.yaml"
        (folder / job).write_text(yaml.safe_dump(doc))
    done: subprocess.CompletedProcess[str] = run_job_file(folder, job, *args, timeout=timeout)
    (folder / "result.json").write_text(json.dumps([done.returncode, done.stdout, done.stderr]))
    return done


def example_run(factory: pytest.TempPathFactory, name: str, **kwargs: object) -> tuple[Path, CompletedRun]:
    """The session's one run of `examples/<name>` (`run_example`): its folder (outputs under
    `genfab-runs/`) and its result. Tests read it; a test that changes it works on `copy_of` it."""
    folder = session_run(factory, name.removesuffix(".yaml"), lambda work: run_example(work, name, **kwargs))
    code, out, err = json.loads((folder / "result.json").read_text())
    return folder, CompletedRun(code, out, err)


@dataclasses.dataclass(frozen=True)
class CompletedRun:
    returncode: int
    stdout: str
    stderr: str
