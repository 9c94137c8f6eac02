"""Importing research code that is not a package on the index (SEVA, VGGT, MoGe): its stage image
installs it at a pinned commit (images/<name>/Dockerfile); genfab's adapters import it at run time."""

from __future__ import annotations

import importlib
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
