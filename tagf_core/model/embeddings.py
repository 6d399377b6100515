"""A TAGF model seen from after its backbones: what frozen-backbone runs train, and what the tracker logs."""

from __future__ import annotations

import copy

from torch import Tensor, nn

from tagf_core.model.tagf import TAGFModel

BACKBONES = ("visual_backbone", "audio_backbone")


class EmbeddingsModel(nn.Module):
    """(video_embeddings B×L×512, audio_embeddings B×L×128) → B×L×1: ``TAGFModel.forward_from_embeddings``.

    Holds the model without its backbones (sharing every other module with it, nothing copied), so pickling it
    — as the tracker logs a frozen run's model — stores what was trained: tens of MB, not the ~400 MB of the
    two backbones, which are the weight files the run was given.
    """

    def __init__(self, model: TAGFModel) -> None:
        super().__init__()
        after_backbones = copy.copy(model)  # a new TAGFModel object sharing model's submodules
        after_backbones.__dict__["_modules"] = {k: v for k, v in model._modules.items() if k not in BACKBONES}
        self.model = after_backbones

    def forward(self, video_embeddings: Tensor, audio_embeddings: Tensor) -> Tensor:
        return self.model.forward_from_embeddings(video_embeddings, audio_embeddings)
