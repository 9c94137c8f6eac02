"""Training data: DiFix triplets from a (staged) data.json, and the order they are seen in.

The order is one global stream: epoch `e` is a seeded permutation of the training set, and global
micro-batch `b` is positions `[b*G, (b+1)*G)` of the stream (`G` = per-GPU batch x world size), rank
`r` taking its slice. The stream does not depend on how many ranks there are, so 2 ranks with batch
1 see what 1 rank with batch 2 sees, and a resumed run continues at the exact micro-batch it would
have reached. Each position also fixes the noise of its VAE sample, so runs repeat bit for bit on
the same hardware whatever the launch shape.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler


@dataclass(frozen=True)
class Triplet:
    image: str
    target: str
    ref: str | None
    prompt: str


def read_split(data_json: Path, split: str) -> list[Triplet]:
    data = json.loads(data_json.read_text())
    return [Triplet(e["image"], e["target_image"], e.get("ref_image"), e.get("prompt", "remove degradation"))
            for _, e in sorted((data.get(split) or {}).items())]


def position_seed(seed: int, position: int) -> int:
    digest = hashlib.sha256(f"{seed}:{position}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def load_image(path: str, height: int, width: int) -> torch.Tensor:
    """[3, H, W] in [-1, 1]."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        if rgb.size != (width, height):
            rgb = rgb.resize((width, height), Image.Resampling.BICUBIC)
        arr = np.asarray(rgb, dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1).div_(127.5).sub_(1.0)


class TripletDataset(Dataset[dict[str, Any]]):
    """Items are `(index, noise seed)`: `x` [V, 3, H, W] (degraded view, then the reference), `y`
    [V, 3, H, W] (target, then the reference again: Difix3D reconstructs both), `noise` of the VAE
    sample [V, C, h, w], and the prompt."""

    def __init__(self, triplets: list[Triplet], height: int, width: int, latent: tuple[int, int, int]) -> None:
        self.triplets = triplets
        self.height, self.width = height, width
        self.latent = latent
        self.views = 2 if triplets and all(t.ref for t in triplets) else 1

    def __len__(self) -> int:
        return len(self.triplets)

    def __getitem__(self, item: tuple[int, int] | int) -> dict[str, Any]:
        index, seed = item if isinstance(item, tuple) else (item, 0)
        t = self.triplets[index]
        src = load_image(t.image, self.height, self.width)
        tgt = load_image(t.target, self.height, self.width)
        if self.views == 2 and t.ref is not None:
            ref = load_image(t.ref, self.height, self.width)
            x, y = torch.stack([src, ref]), torch.stack([tgt, ref])
        else:
            x, y = src[None], tgt[None]
        noise = torch.randn((self.views, *self.latent), generator=torch.Generator().manual_seed(seed))
        return {"x": x, "y": y, "noise": noise, "prompt": t.prompt, "index": index}


class GlobalBatches(Sampler[list[tuple[int, int]]]):
    """This rank's micro-batches of the global stream, from micro-batch `start` on, without end
    (the trainer stops at its step count)."""

    def __init__(self, size: int, per_rank: int, rank: int, world: int, seed: int, start: int = 0) -> None:
        if size < 1:
            raise ValueError("no training samples")
        self.size, self.per_rank, self.rank, self.world = size, per_rank, rank, world
        self.seed, self.start = seed, start
        self._perms: dict[int, list[int]] = {}

    def _at(self, position: int) -> int:
        epoch, offset = divmod(position, self.size)
        perm = self._perms.get(epoch)
        if perm is None:
            g = torch.Generator().manual_seed(position_seed(self.seed, -1 - epoch))
            perm = torch.randperm(self.size, generator=g).tolist()
            self._perms = {epoch: perm}
        return perm[offset]

    def micro_batch(self, b: int) -> list[tuple[int, int]]:
        first = b * self.per_rank * self.world + self.rank * self.per_rank
        return [(self._at(p), position_seed(self.seed, p)) for p in range(first, first + self.per_rank)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        b = self.start
        while True:
            yield self.micro_batch(b)
            b += 1

    def __len__(self) -> int:  # a DataLoader asks; the stream has no end
        return 2**62


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"x": torch.stack([i["x"] for i in items]), "y": torch.stack([i["y"] for i in items]),
            "noise": torch.stack([i["noise"] for i in items]), "prompt": [i["prompt"] for i in items],
            "index": [i["index"] for i in items]}
