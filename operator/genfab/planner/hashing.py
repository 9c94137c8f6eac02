"""Config hashes: change exactly when a stage's effective inputs or parameters change."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def config_hash(
    *,
    name: str,
    family: str,
    image: str | None,
    command: tuple[str, ...],
    args: tuple[str, ...],
    env: tuple[tuple[str, str], ...],
    config: dict[str, Any],
    input_uris: tuple[str, ...],
    upstream_hashes: dict[str, str],
) -> str:
    """sha256 over what decides a finished sample's content.

    Upstream hashes are included, so a change propagates to everything downstream. Resources,
    sharding, retries, parallelism, suspend, queue and sample selection are deliberately left out:
    they change how and which samples run, not what a committed sample contains.
    """
    payload = {
        "name": name,
        "family": family,
        "image": image,
        "command": list(command),
        "args": list(args),
        "env": [list(e) for e in env],
        "config": config,
        "inputs": list(input_uris),
        "upstream": dict(sorted(upstream_hashes.items())),
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()
