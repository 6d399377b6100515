"""A linear probe on the frozen-backbone embeddings: the simplest model TAGF should beat.

Per frame, the chosen embeddings (IR-50's 512-d, VGGish's 128-d, or both concatenated) are standardised and
mapped linearly to the emotion. It sees one frame at a time: no temporal context, no fusion beyond a sum.
The coefficients are fitted in closed form (ridge regression) by ``tagf_core.training.probe``; this module
only holds them as buffers and applies them, so a probe is saved, loaded and logged like any model.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from tagf_core.model.audio_backbone import EMBEDDING_DIM as AUDIO_EMBEDDING_DIM
from tagf_core.model.visual_backbone import EMBEDDING_DIM as VISUAL_EMBEDDING_DIM

Modality = Literal["video", "audio"]
EMBEDDING_DIMS: dict[Modality, int] = {"video": VISUAL_EMBEDDING_DIM, "audio": AUDIO_EMBEDDING_DIM}


class RidgeProbe(nn.Module):
    """(video_embeddings B×L×512, audio_embeddings B×L×128) → prediction B×L×1 = ((x − mean) / scale) · w + b.

    ``x`` is the frame's embeddings of ``modalities``, concatenated in that order (D = 512, 128 or 640).
    Starts as the zero predictor; a fit arrives as a state dict (``tagf_core.training.probe``).
    """

    mean: Tensor
    scale: Tensor
    weight: Tensor
    bias: Tensor

    def __init__(self, modalities: tuple[Modality, ...]) -> None:
        super().__init__()
        if not modalities or any(m not in EMBEDDING_DIMS for m in modalities):
            raise ValueError(f"modalities {modalities!r} must be a non-empty choice of video, audio")
        self.modalities = modalities
        width = sum(EMBEDDING_DIMS[m] for m in modalities)
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))
        self.register_buffer("weight", torch.zeros(width))
        self.register_buffer("bias", torch.zeros(()))

    def features(self, video_embeddings: Tensor, audio_embeddings: Tensor) -> Tensor:
        """The probe's input: …×D, the chosen embeddings concatenated."""
        chosen = {"video": video_embeddings, "audio": audio_embeddings}
        return torch.cat([chosen[m] for m in self.modalities], dim=-1)

    def forward(self, video_embeddings: Tensor, audio_embeddings: Tensor) -> Tensor:
        standardised = (self.features(video_embeddings, audio_embeddings) - self.mean) / self.scale  # B×L×D
        return (standardised @ self.weight + self.bias).unsqueeze(-1)
