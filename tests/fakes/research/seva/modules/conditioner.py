"""`seva.modules.conditioner` as SEVA's: `CLIPConditioner` holds open_clip's ViT-H-14 in `.module` and
the CLIP normalisation in `mean`/`std`; its constructor fetches the weights from the hub, which an
offline Pod cannot (the stand-in refuses the same way). SEVA's module imports open_clip; the stand-in
carries a stand-in of the two names genfab's adapter reads from it (`create_model_and_transforms` with
a checkpoint path, the OpenAI normalisation constants), so the CPU tier needs no open_clip."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch


class _TinyClip(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 4)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.mean(dim=(-2, -1)))


def _create_model_and_transforms(model_name: str, pretrained: str | None = None, **_: Any) -> tuple[Any, Any, Any]:
    assert model_name == "ViT-H-14", model_name  # SEVA's architecture
    model = _TinyClip()
    if pretrained is not None:  # a checkpoint path (open_clip's own rule for a pretrained that is a file)
        model.load_state_dict(torch.load(pretrained, map_location="cpu", weights_only=True))
    return model, None, None


open_clip = SimpleNamespace(create_model_and_transforms=_create_model_and_transforms,
                            OPENAI_DATASET_MEAN=(0.48145466, 0.4578275, 0.40821073),
                            OPENAI_DATASET_STD=(0.26862954, 0.26130258, 0.27577711))


class CLIPConditioner(torch.nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self) -> None:
        raise OSError("stand-in: SEVA's CLIPConditioner() downloads open_clip ViT-H-14 (laion2b_s32b_b79k)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.encode_image((x - self.mean[:, None, None]) / self.std[:, None, None])
