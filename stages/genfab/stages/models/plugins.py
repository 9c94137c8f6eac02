"""Plug-in backends (IntrinsicAnything albedo, captioners): Python entry points, so research code
that is not on PyPI plugs in by installing a small package into the stage image.

    [project.entry-points."genfab.albedo_backends"]
    intrinsic-anything = "my_pkg.intrinsic:load"   # load(checkpoint_dir: Path | None) -> callable

Tests and embedding code can also `register_plugin(group, name, factory)`.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from genfab.stages.runtime import BadInput

_REGISTERED: dict[tuple[str, str], Callable[..., Any]] = {}


def register_plugin(group: str, name: str, factory: Callable[..., Any]) -> None:
    _REGISTERED[(group, name)] = factory


def load_plugin(group: str, name: str) -> Callable[..., Any]:
    """The factory registered for `name` in `group` (in-process registrations win)."""
    if (group, name) in _REGISTERED:
        return _REGISTERED[(group, name)]
    for ep in entry_points(group=group):
        if ep.name == name:
            factory: Callable[..., Any] = ep.load()
            return factory
    installed = sorted({ep.name for ep in entry_points(group=group)} | {n for g, n in _REGISTERED if g == group})
    raise BadInput(f"backend {name!r} needs a plug-in registered under the entry-point group {group!r}; "
                   f"installed: {', '.join(installed) or 'none'} (install the plug-in into the stage image, "
                   f"or run it as a custom stage)")
