"""The whole TAGF network, wired in figure order, with the frozen-feature path and the release stages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tagf_core.config import DataConfig, ModelConfig
from tagf_core.model.audio_backbone import EMBEDDING_DIM as AUDIO_EMBEDDING_DIM
from tagf_core.model.audio_backbone import AudioBackbone
from tagf_core.model.cross_attention import JointCrossAttention
from tagf_core.model.gate import StepGate
from tagf_core.model.head import RegressionHead
from tagf_core.model.tcn import TemporalConvNet
from tagf_core.model.visual_backbone import EMBEDDING_DIM as VISUAL_EMBEDDING_DIM
from tagf_core.model.visual_backbone import VisualBackbone

FUSION_STEPS = 2  # ref §1.6: two cross-attention sub-layers, so M = 3 with the input
GATE_HIDDEN = {"video": 512, "audio": 256}  # ref §1.7: BiLSTM wrapper widths
Fusion = Literal["tagf", "concat"]
"""tagf: cross-attention and gates (the paper); concat: the TCN features straight into the head (a baseline)."""


@dataclass(frozen=True)
class ReleaseStage:
    """Backbone tensors the reference releases together at one stage (ref §3.4)."""

    names: tuple[str, str]
    """(visual group, audio group), e.g. ("visual.output_layer", "audio.fc3")."""
    parameters: tuple[nn.Parameter, ...]


class TAGFModel(nn.Module):
    """TAGF: faces and log-mel patches of one window → one emotion per frame.

    Args:
        window_len: frames per window L; sizes the cross-attention time keys (ref §1.6, reference 300).
        video_channels / audio_channels: TCN widths (ref §1.4).
        kernel_size, tcn_dropout, attention_dropout, gate_temperature: ref §1.4, §1.6, §1.7.
        fusion: ``tagf`` (the paper) or ``concat``, a baseline that concatenates the two TCN streams (B×L×384)
            into the same head, without cross-attention or gate (it builds neither).
    """

    def __init__(
        self,
        *,
        window_len: int,
        video_channels: tuple[int, ...],
        audio_channels: tuple[int, ...],
        kernel_size: int,
        tcn_dropout: float,
        attention_dropout: float,
        gate_temperature: float,
        fusion: Fusion = "tagf",
    ) -> None:
        super().__init__()
        self.window_len = window_len
        self.visual_backbone = VisualBackbone()
        self.audio_backbone = AudioBackbone()
        self.video_tcn = TemporalConvNet(VISUAL_EMBEDDING_DIM, video_channels, kernel_size, tcn_dropout)
        self.audio_tcn = TemporalConvNet(AUDIO_EMBEDDING_DIM, audio_channels, kernel_size, tcn_dropout)
        video_dim, audio_dim = video_channels[-1], audio_channels[-1]
        self.video_norm = nn.BatchNorm1d(video_dim)
        self.audio_norm = nn.BatchNorm1d(audio_dim)
        self.fusion = fusion
        if fusion == "tagf":
            self.cross_attention = JointCrossAttention(
                video_dim, audio_dim, window_len, FUSION_STEPS, attention_dropout
            )
            self.video_gate = StepGate(video_dim, GATE_HIDDEN["video"], gate_temperature)
            self.audio_gate = StepGate(audio_dim, GATE_HIDDEN["audio"], gate_temperature)
        elif fusion != "concat":
            raise ValueError(f"fusion {fusion!r} is not one of tagf, concat")
        self.head = RegressionHead(video_dim + audio_dim)
        self._init_fusion()

    def _init_fusion(self) -> None:
        # ref §1.9: TAGF.init_weights puts xavier (gain 1) and zero bias on every Linear of the fusion module
        # (cross-attention and gate output linears); the LSTMs keep PyTorch's default init.
        if self.fusion != "tagf":
            return
        for module in (self.cross_attention, self.video_gate, self.audio_gate):
            for layer in module.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.xavier_uniform_(layer.weight)
                    nn.init.zeros_(layer.bias)

    # ---- the figure -------------------------------------------------------------------------------------

    def forward(self, video: Tensor, logmel: Tensor) -> Tensor:
        """video B×L×3×40×40 in [−1, 1], logmel B×L×96×64 → prediction B×L×1 in (−1, 1)."""
        batch, length = video.shape[:2]
        self._check_window(length, "video")
        video_feats = self.visual_backbone(video.reshape(batch * length, *video.shape[2:]))
        audio_feats = self.audio_backbone(logmel.reshape(batch * length, *logmel.shape[2:]))
        return self.forward_from_embeddings(video_feats.view(batch, length, -1), audio_feats.view(batch, length, -1))

    def forward_from_embeddings(self, video_embeddings: Tensor, audio_embeddings: Tensor) -> Tensor:
        """video_embeddings B×L×512, audio_embeddings B×L×128 (backbone outputs) → prediction B×L×1."""
        self._check_window(video_embeddings.shape[1], "video_embeddings")
        video_feats = self.video_norm(self.video_tcn(video_embeddings.transpose(1, 2))).transpose(1, 2)  # B×L×256
        audio_feats = self.audio_norm(self.audio_tcn(audio_embeddings.transpose(1, 2))).transpose(1, 2)  # B×L×128
        if self.fusion == "concat":
            return self.head(torch.cat([video_feats, audio_feats], dim=-1))  # B×L×384
        return self.head(self.fuse(video_feats, audio_feats)[0])

    def fuse(self, video_feats: Tensor, audio_feats: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """TAGF: video_feats B×L×256, audio_feats B×L×128 → (fused B×L×384, (video, audio) gate weights B×L×M)."""
        v0, a0 = F.normalize(video_feats, dim=-1), F.normalize(audio_feats, dim=-1)
        v_steps, a_steps = self.cross_attention(v0, a0)  # B×L×M×D; step 0 is the input
        fused_video, video_weights = self.video_gate(v_steps)
        fused_audio, audio_weights = self.audio_gate(a_steps)
        return torch.cat([fused_video, fused_audio], dim=-1), (video_weights, audio_weights)

    def _check_window(self, length: int, name: str) -> None:
        if length != self.window_len:
            raise ValueError(
                f"{name} has {length} frames per window but the model was built for window_len "
                f"{self.window_len} (the cross-attention keys are sized to it)"
            )

    # ---- frozen-feature path ----------------------------------------------------------------------------

    def embed_faces(self, faces: Tensor, batch_size: int = 256) -> Tensor:
        """Per-frame visual embeddings in eval mode: faces …×3×40×40 in [−1, 1] → …×512 (no gradient)."""
        return _embed_in_eval(self.visual_backbone, faces, 3, batch_size)

    def embed_logmel(self, patches: Tensor, batch_size: int = 256) -> Tensor:
        """Per-frame audio embeddings in eval mode: patches …×96×64 → …×128 (no gradient)."""
        return _embed_in_eval(self.audio_backbone, patches, 2, batch_size)

    # ---- parameters -------------------------------------------------------------------------------------

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.visual_backbone.parameters()
        yield from self.audio_backbone.parameters()

    def release_stages(self) -> tuple[ReleaseStage, ...]:
        """The three stages of gradual release, in the reference's order (ref §3.4); each stage releases one
        visual and one audio group: (output layer, FC3), (IR-50 stage 4, FC2), (last 3 units of stage 3, FC1)."""
        visual, audio = self.visual_backbone.release_groups(), self.audio_backbone.release_groups()
        return tuple(
            ReleaseStage(names=(v_name, a_name), parameters=(*v_params, *a_params))
            for (v_name, v_params), (a_name, a_params) in zip(visual, audio, strict=True)
        )

    def freeze_backbones(self) -> None:
        """requires_grad=False on both backbones, as the reference does at load (ref §1.2, §1.3)."""
        for parameter in self.backbone_parameters():
            parameter.requires_grad_(False)


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _embed_in_eval(backbone: nn.Module, items: Tensor, item_dims: int, batch_size: int) -> Tensor:
    """Run ``backbone`` over the items (the last ``item_dims`` axes) in chunks, in eval mode, without grad."""
    if batch_size < 1:
        raise ValueError(f"batch_size {batch_size} must be at least 1")
    leading = items.shape[:-item_dims]
    flat = items.reshape(-1, *items.shape[-item_dims:])
    with torch.no_grad(), _eval_mode(backbone):
        chunks = [backbone(flat[start : start + batch_size]) for start in range(0, flat.shape[0], batch_size)]
        if not chunks:  # no frames: ask the backbone for its width on one dummy item
            width = backbone(torch.zeros(1, *items.shape[-item_dims:], dtype=items.dtype, device=items.device))
            return width.new_zeros(*leading, width.shape[-1])
    return torch.cat(chunks).reshape(*leading, -1)


def build_tagf(**sizes: Any) -> TAGFModel:
    """``TAGFModel`` with randomly initialised backbones, frozen as in the reference (ref §1.2–1.3).

    ``sizes`` override TAGFModel's keyword arguments (window_len, video_channels, …); the others are the
    reference's, taken from the config's defaults (the one place they are written).
    Load real backbone weights with ``load_visual_backbone_weights`` / ``load_audio_backbone_weights``.
    """
    model = TAGFModel(**{**_sizes_of(ModelConfig(), DataConfig().window_len), **sizes})
    model.freeze_backbones()
    return model


def build_tagf_from_config(model: ModelConfig, window_len: int, fusion: Fusion = "tagf") -> TAGFModel:
    """``build_tagf`` with the sizes of a config's ``model`` section and its ``data.window_len``."""
    return build_tagf(fusion=fusion, **_sizes_of(model, window_len))


def _sizes_of(model: ModelConfig, window_len: int) -> dict[str, Any]:
    """The config's model section as TAGFModel's keyword arguments."""
    return {
        "window_len": window_len,
        "video_channels": model.video_tcn_channels,
        "audio_channels": model.audio_tcn_channels,
        "kernel_size": model.tcn_kernel_size,
        "tcn_dropout": model.tcn_dropout,
        "attention_dropout": model.attention_dropout,
        "gate_temperature": model.gate_temperature,
    }
