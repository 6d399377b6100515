"""Recursive joint cross-attention: two unshared DenseCoAttn steps with residual projections (ref §1.6).

From the JCA/RJCMA line of work (Praveen et al.) as used by TAGF. Each frame's output is its own projected
features times a window-global correlation matrix; information moves across time only through those
matrices and through the key projections, which act on the *time* axis and are therefore sized to the
window length (the reference hard-codes 300; here it is a parameter).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class DenseCoAttention(nn.Module):
    """One joint cross-attention: V B×L×Dv, A B×L×Da → attended W_v, W_a, each B×L×(Dv+Da)."""

    def __init__(self, video_dim: int, audio_dim: int, window_len: int, dropout: float) -> None:
        super().__init__()
        joint_dim = video_dim + audio_dim
        self.joint_projection = nn.Linear(joint_dim, joint_dim)
        self.video_key = nn.Linear(window_len, window_len)  # over time, not features
        self.audio_key = nn.Linear(window_len, window_len)
        self.video_value = nn.Linear(video_dim, video_dim)
        self.audio_value = nn.Linear(audio_dim, audio_dim)
        self.video_score_dropout = nn.Dropout(dropout)
        self.audio_score_dropout = nn.Dropout(dropout)
        self.scale = math.sqrt(joint_dim)

    def _attend(self, key: Tensor, joint: Tensor, value: Tensor, dropout: nn.Module) -> Tensor:
        # key B×D×L · joint B×L×J → B×D×J: each feature's correlation with each joint feature over the window
        correlation = dropout(torch.tanh(torch.bmm(key, joint) / self.scale))
        return torch.relu(torch.tanh(torch.bmm(value, correlation)))  # value B×L×D · B×D×J → B×L×J

    def forward(self, video: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        joint = self.joint_projection(torch.cat((video, audio), dim=-1))  # B×L×J
        video_key = self.video_key(video.transpose(1, 2))  # B×Dv×L
        audio_key = self.audio_key(audio.transpose(1, 2))  # B×Da×L
        attended_video = self._attend(video_key, joint, self.video_value(video), self.video_score_dropout)
        attended_audio = self._attend(audio_key, joint, self.audio_value(audio), self.audio_score_dropout)
        return attended_video, attended_audio


class CrossAttentionStep(nn.Module):
    """DenseCoAttention plus residual projections back to each stream's width: V + P_v(W_v), A + P_a(W_a)."""

    def __init__(self, video_dim: int, audio_dim: int, window_len: int, dropout: float) -> None:
        super().__init__()
        joint_dim = video_dim + audio_dim
        self.attention = DenseCoAttention(video_dim, audio_dim, window_len, dropout)
        self.video_projection = nn.Sequential(nn.Linear(joint_dim, video_dim), nn.ReLU(), nn.Dropout(dropout))
        self.audio_projection = nn.Sequential(nn.Linear(joint_dim, audio_dim), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, video: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        attended_video, attended_audio = self.attention(video, audio)
        return video + self.video_projection(attended_video), audio + self.audio_projection(attended_audio)


class JointCrossAttention(nn.Module):
    """``steps`` stacked CrossAttentionSteps, weights not shared (ref §1.6: "recursive" = stacked).

    Returns every step's output stacked after the input: B×L×(steps+1)×D for each stream.
    """

    def __init__(self, video_dim: int, audio_dim: int, window_len: int, steps: int = 2, dropout: float = 0.6) -> None:
        super().__init__()
        self.window_len = window_len
        self.steps = nn.ModuleList(CrossAttentionStep(video_dim, audio_dim, window_len, dropout) for _ in range(steps))

    def forward(self, video: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        """video B×L×Dv, audio B×L×Da (L = window_len) → B×L×M×Dv, B×L×M×Da with M = steps + 1."""
        video_steps, audio_steps = [video], [audio]
        for step in self.steps:
            video, audio = step(video, audio)
            video_steps.append(video)
            audio_steps.append(audio)
        return torch.stack(video_steps, dim=2), torch.stack(audio_steps, dim=2)
