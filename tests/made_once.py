"""What the test session makes once and every test reads: tiny models (machine-wide, kept between sessions)
and a pipeline's one `genfab run` (once per session, whichever xdist worker asks first).

- `tiny_models("save_vistadream_models")`: the folder `scripts/tiny_models.py`'s saver writes, made once per
  machine under `~/.cache/genfab/tiny-models/<key>/` (GENFAB_TOOLS_CACHE moves it), the key a hash of the
  script and the saver's name and arguments: a change to the script makes new ones, a session after the
  first reads them in no time. Read-only for the tests: a test that adds files copies it first (`copy_of`).
- `session_run(factory, name, make)`: `make(folder)` runs once per session (under xdist: once for both
  workers, the second waits for the first), in a folder every test of the session reads; a test whose
  subject is a second run over that output (resume, reuse after a change, a rerun token) runs it on a copy.

Both make the folder in a temporary sibling and rename it into place under a file lock, so a folder that
exists is complete, and a session killed half-way leaves nothing a later one would take for done.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

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
    """`dest`, made by `make(folder)` by the first caller of any process; the others wait for it."""
    if dest.exists():
        return dest
    with _locked(dest.parent / f".{dest.name}.lock"):
        if dest.exists():
            return dest
        work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
        try:
            make(work)
            work.rename(dest)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
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
