"""A TAGF model seen from after its backbones: what frozen-backbone runs train, and what the tracker logs."""

from __future__ import annotations

from torch import Tensor, nn

from tagf_core.model.tagf import TAGFModel


class EmbeddingsModel(nn.Module):
    """(video_embeddings B×L×512, audio_embeddings B×L×128) → B×L×1: ``TAGFModel.forward_from_embeddings``."""

    def __init__(self, model: TAGFModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, video_embeddings: Tensor, audio_embeddings: Tensor) -> Tensor:
        return self.model.forward_from_embeddings(video_embeddings, audio_embeddings)
