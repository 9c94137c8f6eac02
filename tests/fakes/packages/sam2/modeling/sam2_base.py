from typing import Any

import torch

from sam2.modeling import Component


class SAM2Base(Component):
    def __init__(self, image_encoder: Any, memory_attention: Any, memory_encoder: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_encoder, self.memory_attention, self.memory_encoder = image_encoder, memory_attention, memory_encoder
        self.weight = torch.nn.Parameter(torch.ones(1))  # something for a checkpoint to hold
