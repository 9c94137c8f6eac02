"""Importing research code that is not a package on the index (SEVA, VGGT, MoGe): its stage image
installs it at a pinned commit (images/<name>/Dockerfile); genfab's adapters import it at run time."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
from types import ModuleType

from genfab.api.families import RESEARCH_IMAGES
from genfab.stages.runtime import BadInput

SETTINGS = {"seva": "worldexplorer.seva.image", "vggt": "worldexplorer.vggt.image", "moge": "vistadream.mogeImage"}
"""Package (a `RESEARCH_IMAGES` name) -> the setting naming the image that has it."""


def import_research(package: str, module: str) -> ModuleType:
    """`package.module`, or BadInput naming the image to run this stage in."""
    try:
        return importlib.import_module(f"{package}.{module}")
    except ImportError as exc:
        assert package in RESEARCH_IMAGES, package
        raise BadInput(f"the {package} adapter needs the `{package}` package, which this stage image does not have "
                       f"({exc}): set {SETTINGS[package]} to an image built from images/{package}/Dockerfile") from None


def provenance(package: str) -> str:
    """Which code of `package` runs, for producedBy and each sample's params: `vggt@44b3afbd1869` when
    pip installed it from its repository, as images/<name>/Dockerfile does (PEP 610's
    `direct_url.json` in its metadata names the commit); `vggt <version>` when it came another way (the
    CPU tier's stand-ins say `0+genfab.stand.in`); `vggt (commit unrecorded)` without metadata."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return f"{package} (commit unrecorded)"
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        direct = {}
    commit = (direct.get("vcs_info") or {}).get("commit_id") if isinstance(direct, dict) else None
    return f"{package}@{commit[:12]}" if isinstance(commit, str) and commit else f"{package} {dist.version}"
