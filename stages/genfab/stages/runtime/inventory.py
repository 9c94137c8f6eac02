"""`python -m genfab.stages.runtime.inventory`: list a stage's samples once and write its sample manifest.

The operator starts this as a one-Pod Job (genfab.operator.builders.build_inventory_job) for a stage
whose listing is too big for a reconcile: an input folder of a million images, or the samples a
10,000-shard upstream stage committed. It reads the mounted stage config and the stage Pods' storage
settings, lists the samples exactly as every executor does (`resolve_samples`), and writes
`_genfab/samples/{stage}/{hash10}/` (genfab.inventory.manifest); the operator then reads the manifest's
header to size the stage's Job, whose shards each read only their slice.

Exit 0 with one line (the count); 42 with one line when the input cannot give a sample list (missing or
empty folder, unknown ids: retrying cannot help); 1 on a storage error (retried).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from genfab.contract import EXIT_BAD_INPUT, EXIT_OK, EXIT_RETRYABLE, StageConfig
from genfab.contract.names import ENV_TERMINATION_LOG
from genfab.inventory import InventoryError, resolve_samples
from genfab.inventory.manifest import InvalidManifest, SampleManifest, write_manifest
from genfab.stages.runtime.context import read_config
from genfab.stages.runtime.errors import BadInput
from genfab.stages.runtime.progress import TERMINATION_LOG
from genfab.storage import Storage, StorageError, open_storage

log = logging.getLogger("genfab.stages.inventory")


def make_inventory(cfg: StageConfig, open_fn: Callable[[str], Storage]) -> SampleManifest:
    """List the stage's samples and write its manifest (InventoryError: bad input)."""
    samples = resolve_samples(cfg, open_fn)
    try:
        return write_manifest(open_fn(cfg.run_uri), cfg.stage, cfg.config_hash, [(s.id, s.source) for s in samples])
    except InvalidManifest as exc:
        raise InventoryError(str(exc)) from None


def main(env: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    started = time.monotonic()
    try:
        cfg = read_config(env)
        manifest = make_inventory(cfg, open_storage)
    except (BadInput, InventoryError) as exc:
        return end_with_line(env, EXIT_BAD_INPUT, f"genfab inventory: bad input: {exc}")
    except StorageError as exc:
        return end_with_line(env, EXIT_RETRYABLE, f"genfab inventory: storage: {exc}")
    return end_with_line(env, EXIT_OK, f"genfab inventory: stage {cfg.stage}: {manifest.count} samples in "
                                       f"{len(manifest.parts)} part(s), listed in {time.monotonic() - started:.1f} s")


def end_with_line(env: Mapping[str, str], code: int, line: str) -> int:
    """A one-Pod Job's end: one line on stderr and, for `kubectl describe pod` and the operator, in the
    termination message; returns `code`, the exit status."""
    print(line, file=sys.stderr)
    path = Path(env.get(ENV_TERMINATION_LOG) or TERMINATION_LOG)
    if path.parent.is_dir() and (path.exists() or path.as_posix() != TERMINATION_LOG):
        with contextlib.suppress(OSError):  # a read-only filesystem must not change the exit code
            path.write_text(line[:4000])
    return code


if __name__ == "__main__":
    sys.exit(main())
