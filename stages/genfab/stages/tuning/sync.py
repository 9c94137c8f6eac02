"""Checkpoint sync: every finished file a trainer writes under its run folder goes to object storage
as it appears, for the built-in trainer and for a lab's own trainer alike.

A file is finished when it is not a temporary (`.partial`, `.tmp`, dot files) and its size and
modification time held still over one poll (a trainer that `torch.save`s in place is caught by the
second look). Uploads are atomic per object (S3 PUTs; file:// writes a temporary and renames), so a
reader of `checkpoints/` never sees half a checkpoint. Once a checkpoint is uploaded, local copies
beyond the newest `keep` are deleted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from genfab.api.training import TrainingState
from genfab.contract.names import checkpoint_step
from genfab.stages.models.difix_checkpoints import prune
from genfab.stages.tuning.worker import PROGRESS_FILE
from genfab.storage import Storage, StorageError

log = logging.getLogger("genfab.stages")
SKIP_SUFFIXES = (".partial", ".tmp", ".part", ".lock")


class RunSync:
    def __init__(self, local: Path, remote: Storage, keep: int, on_progress: Callable[[TrainingState], None],
                 interval: float = 5.0, on_upload: Callable[[], None] = lambda: None) -> None:
        self.local, self.remote, self.keep = local, remote, keep
        self.on_progress = on_progress
        self.on_upload = on_upload
        """Called when files were uploaded (new files are progress too, for trainers that report none)."""
        self.interval = interval
        self._seen: dict[str, tuple[int, float]] = {}
        """Last look at each file: (size, mtime)."""
        self._uploaded: dict[str, tuple[int, float]] = {}
        self.checkpoints: list[str] = []
        self.reported = False
        """The trainer has reported progress (from then on, only its reports count as progress)."""
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="genfab-run-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and upload what is left (the trainer has exited: every file is final)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.poll(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except StorageError as exc:  # retried at the next poll; the final poll raises
                log.warning("run sync: %s", exc)

    def poll(self, final: bool = False) -> list[str]:
        """Upload every file that is finished and changed since its last upload; returns their keys."""
        done = []
        for path in sorted(p for p in self.local.rglob("*") if p.is_file()):
            rel = path.relative_to(self.local).as_posix()
            if path.name == PROGRESS_FILE:
                self._progress(path)
                continue
            if path.name.startswith(".") or path.name.endswith(SKIP_SUFFIXES):
                continue
            stat = path.stat()
            look = (stat.st_size, stat.st_mtime)
            stable = final or self._seen.get(rel) == look
            self._seen[rel] = look
            if not stable or self._uploaded.get(rel) == look:
                continue
            self.remote.upload_file(rel, path)
            self._uploaded[rel] = look
            done.append(rel)
            if rel.startswith("checkpoints/") and checkpoint_step(path.name) is not None:
                self.checkpoints.append(path.name)
                log.info("checkpoint uploaded", extra={"key": rel, "bytes": stat.st_size})
        if any(k.startswith("checkpoints/") for k in done):
            prune(self.local / "checkpoints", self.keep)
        if done:
            self.on_upload()
        return done

    def _progress(self, path: Path) -> None:
        try:
            state = TrainingState.parse(path.read_bytes())
        except OSError:
            return
        if state is not None:
            self.reported = True
            self.on_progress(state)
