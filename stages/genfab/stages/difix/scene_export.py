"""One scene's export as its frame tasks and the PLY renderer share it: where the scene's files
are, its cameras and group, and the renders made from PLY."""

from __future__ import annotations

from dataclasses import dataclass, field

from genfab.api.difix import DifixSource
from genfab.stages.difix.layouts import FrameKey, SceneFiles
from genfab.stages.gaussians.cameras import Camera
from genfab.storage.base import Storage


@dataclass
class SceneExport:
    """Everything one scene's export needs, shared by its frame tasks."""

    source: DifixSource
    storage: Storage
    renders: Storage | None
    files: SceneFiles
    cameras: dict[int, Camera]
    group: str
    image_format: str
    min_mask: float
    rendered: dict[FrameKey, bytes] = field(default_factory=dict)
    """Renders made here from PLY (`renders: ply`), PNG."""

    def render_key(self, path: str) -> str:
        """A render or PLY key under its storage (`rendersUri`, else the source URI)."""
        return path if self.renders is not None else self.source_key(path)

    def render_bytes(self, key: FrameKey) -> tuple[bytes, str]:
        """The render's bytes and where it came from (`rendersUri:` marks the renders folder's keys)."""
        mark = "rendersUri:" if self.renders is not None else ""
        if key in self.rendered:
            ply = self.files.plys.get(key[1]) or self.files.plys["*"]
            return self.rendered[key], f"ply:{mark}{self.render_key(ply)}"
        rel = self.render_key(self.files.renders[key])
        return (self.renders or self.storage).read_bytes(rel), f"{mark}{rel}"

    def source_key(self, path: str) -> str:
        """A scene file's key under the source URI."""
        return f"{self.files.scene.key}/{path}"

    def source_bytes(self, path: str) -> bytes:
        return self.storage.read_bytes(self.source_key(path))
