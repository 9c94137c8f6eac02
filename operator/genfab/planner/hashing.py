"""Config hashes: change exactly when what decides a stage's output changes.

A stage's hash is made of four parts, kept apart so a plan can say why a stage runs again:
- `config`: the stage's identity and the settings it reads (run-time options left out: see
  `genfab.api.base.RUN_TIME`), its image, command and environment, its input URIs and the built-in
  implementation's output revision (`StageDecl.revision`, when above 0);
- `upstream`: the hashes of the stages it consumes, so a change propagates downstream;
- `models`: the identity of every model it loads (`genfab.inventory.model_identity`);
- `rerun`: the user's re-run token (`spec.rerun`), for the stages it names.

Resources, sharding, retries, parallelism, suspend, queue and sample selection are deliberately left
out: they change how and which samples run, not what a committed sample contains.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

HashPart = Literal["config", "upstream", "models", "rerun"]
PARTS: tuple[HashPart, ...] = ("config", "upstream", "models", "rerun")
REASONS: dict[HashPart, str] = {"config": "config", "upstream": "upstream", "models": "model", "rerun": "forced"}
"""How `genfab plan` names a changed part."""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def _digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def hash_parts(
    *,
    name: str,
    family: str,
    image: str | None,
    command: tuple[str, ...],
    args: tuple[str, ...],
    env: tuple[tuple[str, str], ...],
    config: dict[str, Any],
    input_uris: tuple[str, ...],
    upstream_hashes: Mapping[str, str],
    models: Mapping[str, str],
    rerun: str | None,
    revision: int = 0,
) -> dict[str, str]:
    """The four parts' digests (`rerun` is empty when no token applies, so adding `spec.rerun` for
    other stages changes nothing here)."""
    return {
        "config": _digest({"name": name, "family": family, "image": image, "command": list(command),
                           "args": list(args), "env": [list(e) for e in env], "config": config,
                           "inputs": list(input_uris), **({"revision": revision} if revision else {})}),
        "upstream": _digest(dict(sorted(upstream_hashes.items()))),
        "models": _digest(dict(sorted(models.items()))),
        "rerun": _digest(rerun) if rerun is not None else "",
    }


def config_hash(parts: Mapping[str, str]) -> str:
    """sha256 over the parts: the hash a committed sample's marker records."""
    return _digest({p: parts[p] for p in PARTS})


def changed_parts(before: Mapping[str, str] | None, after: Mapping[str, str]) -> list[str]:
    """Why a stage whose hash changed runs again, as `genfab plan` names it (`config`, `upstream`,
    `model`, `forced`); `new` when nothing was recorded before."""
    if not before:
        return ["new"]
    return [REASONS[p] for p in PARTS if before.get(p, "") != after.get(p, "")]
