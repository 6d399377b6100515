"""Independent re-derivation of the reference LFAN/TAGF network, used only as a test oracle.

Written from ``/work/shared/reference/TAGF-reference.md`` (§1 and §3.4) and its key tables
(``lfan_state_dict.tsv``, ``res50_ir_state_dict.tsv``, ``vggish_state_dict.tsv``), with the public
reference sources read only to settle ambiguities. It is deliberately *not* the production model
(``tagf_core.model``) and shares no code with it: it exists so that tests can compare the two.

What it reproduces, on purpose, including the reference's oddities:

* the exact ``state_dict()`` key set of the reference ``LFAN`` (dead modules included: the ``bert`` and
  ``vggish`` TCN+BN branches, ``TAGF.Joint``, ``TAGF.vregressor``/``aregressor``, ``spatial.visual.logits``,
  and the ``network.i.net.0``/``net.4`` aliases of the weight-normed ``conv1``/``conv2``);
* the module registration order, so ``list(spatial.visual.parameters())`` and
  ``list(spatial.audio.backbone.parameters())`` have the reference's indices (§3.4);
* the construction order of every randomly initialised module (RNG stream, best effort), the TCN
  xavier init that is a no-op under old-style ``weight_norm`` and the xavier init of the TAGF linears;
* the forward pass: IR-50 (5×5 output layer, L2 norm without epsilon), VGGish (no final ReLU),
  causal TCNs, per-modality BN, the two unshared dense co-attention steps, the per-frame BiLSTM gate
  over the 3 recursion steps (softmax of the feature mean at temperature 0.1, applied to the
  un-encoded stack), and the regression head. The ``bert``/``vggish`` branches run when given and
  are discarded, exactly as in the reference.

Nothing here needs CUDA (the reference's ``.cuda()`` calls are left out) or the network.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "EMBEDDING_DIM",
    "MODALITIES",
    "TCN_CHANNELS",
    "WINDOW",
    "ReferenceAudioBackbone",
    "ReferenceDCN",
    "ReferenceDenseCoAttn",
    "ReferenceGateLSTM",
    "ReferenceIR50",
    "ReferenceLFAN",
    "ReferenceTAGF",
    "ReferenceTCN",
    "ReferenceVGGish",
    "ReferenceVisualBackbone",
    "reference_release_groups",
]

#: Window length the reference hard-codes in the co-attention key linears.
WINDOW = 300
#: Modalities in the reference's default ``-modality`` order (only the first two reach the fusion).
MODALITIES: tuple[str, ...] = ("video", "logmel", "bert", "vggish")
#: TCN input width per modality.
EMBEDDING_DIM: dict[str, int] = {"video": 512, "logmel": 128, "bert": 768, "vggish": 128}
#: TCN channel lists per modality (configs.py ``tcn.channels``).
TCN_CHANNELS: dict[str, list[int]] = {
    "video": [512, 512, 256, 256],
    "logmel": [128, 128, 128, 128],
    "bert": [256, 256, 128, 128],
    "vggish": [64, 64, 32, 32],
}
TCN_KERNEL = 5
TCN_DROPOUT = 0.1
GATE_TEMPERATURE = 0.1


# ----------------------------------------------------------------------------------------------------------------------
# Visual backbone: ArcFace-style IR-50 ("ir" mode) on 40×40 faces
# ----------------------------------------------------------------------------------------------------------------------


class _FlattenBatch(nn.Module):
    """Flattens everything but the batch axis (parameter-free)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.size(0), -1)


def _output_layer(spatial: int) -> nn.Sequential:
    """BN2d(512) → Dropout(0.4) → Flatten → Linear(512·s·s → 512) → BN1d(512)."""
    return nn.Sequential(
        nn.BatchNorm2d(512),
        nn.Dropout(0.4),
        _FlattenBatch(),
        nn.Linear(512 * spatial * spatial, 512),
        nn.BatchNorm1d(512),
    )


class _IRUnit(nn.Module):
    """One ``bottleneck_IR`` unit. The shortcut is registered before the residual branch."""

    def __init__(self, in_channels: int, depth: int, stride: int) -> None:
        super().__init__()
        self.shortcut_layer: nn.Module
        if in_channels == depth:
            self.shortcut_layer = nn.MaxPool2d(kernel_size=1, stride=stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(depth),
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, kernel_size=3, stride=1, padding=1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


#: (input channels, depth, units, first-unit stride) of the four IR-50 stages.
IR50_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (64, 64, 3, 1),
    (64, 128, 4, 2),
    (128, 256, 14, 2),
    (256, 512, 3, 2),
)


class ReferenceIR50(nn.Module):
    """IR-50 ``Backbone``: registers ``input_layer``, ``output_layer``, then ``body`` (this order sets §3.4's indices).

    The stock output layer is sized for a 7×7 map (112-px input); :class:`ReferenceVisualBackbone` swaps it for the
    5×5 one in place, which keeps its registration slot.
    """

    def __init__(self) -> None:
        super().__init__()
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
        )
        self.output_layer = _output_layer(7)
        units: list[nn.Module] = []
        for in_channels, depth, count, stride in IR50_STAGES:
            units.append(_IRUnit(in_channels, depth, stride))
            units.extend(_IRUnit(depth, depth, 1) for _ in range(count - 1))
        self.body = nn.Sequential(*units)

    def forward(self, x: Tensor) -> Tensor:
        x = self.output_layer(self.body(self.input_layer(x)))
        # The reference's l2_norm: plain division by the 2-norm, no epsilon.
        return x / torch.norm(x, 2, 1, True)


class ReferenceVisualBackbone(nn.Module):
    """``VisualBackbone(mode='ir')``: IR-50 with a 5×5 output layer plus an unused 8-way ``logits`` head."""

    def __init__(self, num_classes: int = 8) -> None:
        super().__init__()
        self.backbone = ReferenceIR50()
        self.backbone.output_layer = _output_layer(5)  # replaces the 7×7 layer in its original slot
        self.logits = nn.Linear(512, num_classes)
        for module in self.backbone.output_layer.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.logits.weight)
        nn.init.zeros_(self.logits.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, 40, 40) in [−1, 1] → (N, 512) unit-norm embeddings (``logits`` is not applied)."""
        return self.backbone(x)


# ----------------------------------------------------------------------------------------------------------------------
# Audio backbone: VGGish without the final ReLU and without PCA
# ----------------------------------------------------------------------------------------------------------------------

_VGGISH_CONVS: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")


class ReferenceVGGish(nn.Module):
    """torchvggish-compatible VGGish: ``features.*`` conv stack, ``embeddings.*`` FC stack (12288→4096→4096→128)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for item in _VGGISH_CONVS:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, 128),
        )

    def forward(self, patches: Tensor) -> Tensor:
        """(N, 96, 64) log-mel patches (time, mel) → (N, 128)."""
        x = self.features(patches.detach().float().unsqueeze(1))  # (N, 512, 6, 4)
        x = x.permute(0, 2, 3, 1).contiguous()  # (N, 6, 4, 512): the TF-compatible flattening order
        return self.embeddings(x.reshape(x.size(0), -1))


class ReferenceAudioBackbone(nn.Module):
    """``AudioBackbone``: a wrapper whose only child is ``backbone`` (the VGGish)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = ReferenceVGGish()

    def forward(self, patches: Tensor) -> Tensor:
        return self.backbone(patches)


# ----------------------------------------------------------------------------------------------------------------------
# Causal TCN with old-style weight norm
# ----------------------------------------------------------------------------------------------------------------------


def _weight_normed_conv1d(in_channels: int, out_channels: int, dilation: int) -> nn.Conv1d:
    conv = nn.Conv1d(
        in_channels, out_channels, TCN_KERNEL, stride=1, padding=(TCN_KERNEL - 1) * dilation, dilation=dilation
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the old API is deprecated, not removed, in torch 2.13
        return torch.nn.utils.weight_norm(conv)  # keys weight_g (out, 1, 1) and weight_v


class _Chomp(nn.Module):
    """Drops the trailing ``size`` steps, which makes the padded convolution causal."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, : -self.size].contiguous()


class _TemporalBlock(nn.Module):
    """[wn-conv → chomp → LeakyReLU → Dropout] ×2 plus a residual (1×1 conv when the width changes), then LeakyReLU.

    ``conv1``/``conv2`` are registered as attributes *and* inside ``net`` (as ``net.0``/``net.4``), so the state dict
    holds each of their tensors under two names, as the reference's does.
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int, dropout: float) -> None:
        super().__init__()
        padding = (TCN_KERNEL - 1) * dilation
        self.conv1 = _weight_normed_conv1d(in_channels, out_channels, dilation)
        self.chomp1 = _Chomp(padding)
        self.relu1 = nn.LeakyReLU()
        self.dropout1 = nn.Dropout(dropout)
        self.conv2 = _weight_normed_conv1d(out_channels, out_channels, dilation)
        self.chomp2 = _Chomp(padding)
        self.relu2 = nn.LeakyReLU()
        self.dropout2 = nn.Dropout(dropout)
        self.net = nn.Sequential(
            self.conv1, self.chomp1, self.relu1, self.dropout1, self.conv2, self.chomp2, self.relu2, self.dropout2
        )
        self.downsample = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else None
        self.relu = nn.LeakyReLU()
        # The reference's init: xavier(gain √2) on conv1.weight / conv2.weight is a no-op, because weight_norm
        # recomputes ``weight`` from weight_g/weight_v before every forward. It still draws random numbers, so it is
        # kept for the RNG stream. The downsample conv is not weight-normed, so its xavier init is real.
        gain = math.sqrt(2.0)
        nn.init.xavier_uniform_(self.conv1.weight, gain=gain)
        nn.init.xavier_uniform_(self.conv2.weight, gain=gain)
        if self.downsample is not None:
            nn.init.xavier_uniform_(self.downsample.weight, gain=gain)

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(self.net(x) + residual)


class ReferenceTCN(nn.Module):
    """``TemporalConvNet`` (attention=0): level i has dilation 2**i. (B, C_in, L) → (B, C_last, L)."""

    def __init__(self, in_channels: int, channels: list[int], dropout: float = TCN_DROPOUT) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for level, out_channels in enumerate(channels):
            previous = in_channels if level == 0 else channels[level - 1]
            blocks.append(_TemporalBlock(previous, out_channels, 2**level, dropout))
        self.network = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x)


# ----------------------------------------------------------------------------------------------------------------------
# TAGF: dense co-attention steps + per-frame BiLSTM gate over the recursion steps
# ----------------------------------------------------------------------------------------------------------------------


class ReferenceDenseCoAttn(nn.Module):
    """``DenseCoAttn(d1, d2, p)``: feature-by-joint-feature correlation matrices over the window's time axis."""

    def __init__(self, dim1: int, dim2: int, dropout: float, window: int = WINDOW) -> None:
        super().__init__()
        joint = dim1 + dim2
        self.dropouts = nn.ModuleList([nn.Dropout(p=dropout), nn.Dropout(p=dropout)])
        self.query_linear = nn.Linear(joint, joint)
        self.key1_linear = nn.Linear(window, window)  # acts on time: the window length is baked into the weights
        self.key2_linear = nn.Linear(window, window)
        self.value1_linear = nn.Linear(dim1, dim1)
        self.value2_linear = nn.Linear(dim2, dim2)

    @staticmethod
    def _attend(joint: Tensor, key: Tensor, value: Tensor, dropout: nn.Module) -> Tensor:
        # key (B, D_m, L) · joint (B, L, D) → (B, D_m, D); value (B, L, D_m) · that → (B, L, D)
        scores = dropout(torch.tanh(torch.bmm(key, joint) / math.sqrt(joint.size(-1))))
        return torch.relu(torch.tanh(torch.bmm(value, scores)))

    def forward(self, first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
        joint = self.query_linear(torch.cat((first, second), dim=-1))  # (B, L, d1+d2)
        key1 = self.key1_linear(first.transpose(1, 2))  # (B, d1, L)
        key2 = self.key2_linear(second.transpose(1, 2))  # (B, d2, L)
        value1 = self.value1_linear(first)
        value2 = self.value2_linear(second)
        attended1 = self._attend(joint, key1, value1, self.dropouts[0])
        attended2 = self._attend(joint, key2, value2, self.dropouts[1])
        return attended1, attended2


class _CoAttnStep(nn.Module):
    """``NormalSubLayer``: residual update of both streams from their co-attended features."""

    def __init__(self, dim1: int, dim2: int, dropout: float) -> None:
        super().__init__()
        self.dense_coattn = ReferenceDenseCoAttn(dim1, dim2, dropout)
        self.linears = nn.ModuleList(
            [
                nn.Sequential(nn.Linear(dim1 + dim2, dim1), nn.ReLU(inplace=True), nn.Dropout(p=dropout)),
                nn.Sequential(nn.Linear(dim1 + dim2, dim2), nn.ReLU(inplace=True), nn.Dropout(p=dropout)),
            ]
        )

    def forward(self, first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
        attended1, attended2 = self.dense_coattn(first, second)
        return first + self.linears[0](attended1), second + self.linears[1](attended2)


class ReferenceDCN(nn.Module):
    """``DCNLayer(d1, d2, num_seq, p)``: ``num_seq`` *unshared* steps; returns the per-step outputs of both streams."""

    def __init__(self, dim1: int, dim2: int, num_seq: int, dropout: float) -> None:
        super().__init__()
        self.dcn_layers = nn.ModuleList([_CoAttnStep(dim1, dim2, dropout) for _ in range(num_seq)])

    def forward(self, first: Tensor, second: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        firsts: list[Tensor] = []
        seconds: list[Tensor] = []
        for step in self.dcn_layers:
            first, second = step(first, second)
            firsts.append(first)
            seconds.append(second)
        return firsts, seconds


class ReferenceGateLSTM(nn.Module):
    """The custom ``LSTM`` wrapper of models/layer.py (residual embeddings on).

    BiLSTM (dim/2 per direction, batch first) from a learned initial state ``init_hidden`` of shape (4·layers, dim/2):
    rows [0, 2·layers) are h0 and the rest c0, expanded over the batch. Output:
    ``normalize(linear(dropout(cat[inputs, lstm_out])))``.
    """

    def __init__(self, embed_size: int, dim: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        self.rnn_dim = dim // 2
        self.num_layers = num_layers
        self.linear = nn.Linear(dim + embed_size, dim)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # dropout with one layer is a no-op; torch says so
            self.rnn = nn.LSTM(
                embed_size, self.rnn_dim, num_layers=num_layers, dropout=dropout, bidirectional=True, batch_first=True
            )
        self.init_hidden = nn.Parameter(nn.init.xavier_uniform_(torch.empty(4 * num_layers, self.rnn_dim)))

    def forward(self, inputs: Tensor) -> Tensor:
        batch = inputs.size(0)
        states = 2 * self.num_layers
        h0 = self.init_hidden[:states].unsqueeze(1).expand(states, batch, self.rnn_dim).contiguous()
        c0 = self.init_hidden[states:].unsqueeze(1).expand(states, batch, self.rnn_dim).contiguous()
        outputs, _ = self.rnn(inputs, (h0, c0))
        outputs = torch.cat([inputs, outputs], dim=-1)
        return F.normalize(self.linear(self.dropout(outputs)), dim=-1)


class ReferenceTAGF(nn.Module):
    """``TAGF``: L2-norm → 2 co-attention steps → per-frame gate over [x0, x1, x2] → concat video‖audio (384).

    After each forward, :attr:`last_gate_weights` holds the detached gate weights as
    ``{"video": (B, L, 3), "audio": (B, L, 3)}`` (step order: input, step 1, step 2).
    """

    def __init__(self) -> None:
        super().__init__()
        self.coattn = ReferenceDCN(256, 128, 2, 0.6)
        self.video_temporal_encoder = ReferenceGateLSTM(embed_size=256, dim=512, num_layers=1, dropout=0.1)
        self.audio_temporal_encoder = ReferenceGateLSTM(embed_size=128, dim=256, num_layers=1, dropout=0.1)
        # Dead modules, kept for the state dict / optimizer parameter list / RNG stream.
        self.vregressor = nn.Sequential(nn.Linear(512, 128), nn.ReLU(inplace=True), nn.Dropout(0.6), nn.Linear(128, 1))
        self.Joint = ReferenceGateLSTM(embed_size=1024, dim=512, num_layers=2, dropout=0.0)
        self.aregressor = nn.Sequential(nn.Linear(512, 128), nn.ReLU(inplace=True), nn.Dropout(0.6), nn.Linear(128, 1))
        self.relu = nn.ReLU()
        self.softmax = nn.Softmax(dim=-1)
        self.last_gate_weights: dict[str, Tensor] = {}
        self._init_weights()

    def _init_weights(self) -> None:
        """xavier-uniform (gain 1) + zero bias on every Linear/Conv below TAGF, in ``Module.apply`` (post-) order.

        The reference selects modules by class name ("Conv"/"Linear"); below TAGF only ``nn.Linear`` matches (the
        LSTM wrapper and ``nn.LSTM`` do not), so ``init_hidden`` and the LSTM weights keep their own init.
        """

        def init(module: nn.Module) -> None:
            if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
                nn.init.xavier_uniform_(module.weight, gain=1.0)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

        self.apply(init)

    @staticmethod
    def _gate(stack: Tensor, encoder: ReferenceGateLSTM) -> tuple[Tensor, Tensor]:
        batch, length, steps, dim = stack.shape
        frames = stack.reshape(batch * length, steps, dim)  # the BiLSTM runs over the 3 steps of one frame
        score = encoder(frames).mean(dim=-1)  # (B·L, 3)
        weights = F.softmax(score / GATE_TEMPERATURE, dim=1).unsqueeze(-1)
        fused = (frames * weights).sum(dim=1)  # weights multiply the un-encoded stack
        return fused.reshape(batch, length, dim), weights.reshape(batch, length, steps)

    def forward(self, video: Tensor, audio: Tensor) -> Tensor:
        """(B, L, 256), (B, L, 128) → (B, L, 384). No ReLU after the gated sum."""
        video = F.normalize(video, dim=-1)
        audio = F.normalize(audio, dim=-1)
        video_steps, audio_steps = self.coattn(video, audio)
        video_stack = torch.stack([video, video_steps[-2], video_steps[-1]], dim=2)  # (B, L, 3, 256)
        audio_stack = torch.stack([audio, audio_steps[-2], audio_steps[-1]], dim=2)  # (B, L, 3, 128)
        fused_video, video_weights = self._gate(video_stack, self.video_temporal_encoder)
        fused_audio, audio_weights = self._gate(audio_stack, self.audio_temporal_encoder)
        self.last_gate_weights = {"video": video_weights.detach(), "audio": audio_weights.detach()}
        return torch.cat((fused_video, fused_audio), dim=-1)


# ----------------------------------------------------------------------------------------------------------------------
# LFAN: backbones → TCN + BN per modality → TAGF → head
# ----------------------------------------------------------------------------------------------------------------------


class ReferenceLFAN(nn.Module):
    """The reference ``LFAN`` after ``init()`` with modalities video, logmel, bert, vggish and the TAGF fusion.

    Registration order (= ``state_dict`` order): ``temporal``, ``spatial`` (``visual``, ``audio``), ``bn``, ``TAGF``,
    ``regressor1``, ``bn1``, ``regressor2``. Construction order (= RNG order): visual backbone, VGGish, TCN+BN for
    video, logmel, bert, vggish, TAGF, head. Backbones are built randomly initialised (the reference loads weights
    into them afterwards). With ``frozen_backbones`` (default) they get ``requires_grad=False`` as in the reference
    after ``init()``; everything else, dead modules included, stays trainable.

    After each forward: :attr:`gate_weights` (``{"video", "audio"}`` → (B, L, 3)) and :attr:`last_intermediates`
    (detached tensors by stage name) describe the pass.
    """

    def __init__(self, frozen_backbones: bool = True) -> None:
        super().__init__()
        self.temporal = nn.ModuleDict()
        self.spatial = nn.ModuleDict()
        self.bn = nn.ModuleDict()
        self.spatial["visual"] = ReferenceVisualBackbone()
        self.spatial["audio"] = ReferenceAudioBackbone()
        for modal in MODALITIES:
            self.temporal[modal] = ReferenceTCN(EMBEDDING_DIM[modal], TCN_CHANNELS[modal])
            self.bn[modal] = nn.BatchNorm1d(TCN_CHANNELS[modal][-1])
        self.TAGF = ReferenceTAGF()
        self.regressor1 = nn.Linear(384, 256)
        self.bn1 = nn.BatchNorm1d(256)
        self.regressor2 = nn.Linear(256, 1)
        self.last_intermediates: dict[str, Tensor] = {}
        if frozen_backbones:
            self.freeze_backbones()

    @property
    def gate_weights(self) -> dict[str, Tensor]:
        """Gate weights of the last forward: ``{"video": (B, L, 3), "audio": (B, L, 3)}``, detached."""
        return self.TAGF.last_gate_weights

    def freeze_backbones(self) -> None:
        """``requires_grad=False`` on both backbones, as the reference does right after loading them."""
        for parameter in self.spatial.parameters():
            parameter.requires_grad_(False)

    def embed_video(self, video: Tensor) -> Tensor:
        """(B, L, 3, 40, 40) → (B, L, 512) with the IR-50 (run on B·L frames)."""
        batch, length = video.shape[:2]
        frames = video.reshape(batch * length, *video.shape[2:])
        return self.spatial["visual"](frames).reshape(batch, length, -1)

    def embed_logmel(self, logmel: Tensor) -> Tensor:
        """(B, 64, L, 96) — the reference batch layout after ``ToTensor`` — → (B, L, 128) with VGGish."""
        batch, mels, length, hops = logmel.shape
        patches = logmel.permute(0, 2, 3, 1).reshape(batch * length, hops, mels)  # (B·L, 96, 64)
        return self.spatial["audio"](patches).reshape(batch, length, -1)

    def _temporal(self, modal: str, features: Tensor) -> Tensor:
        """(B, L, C_in) → TCN → BN1d over channels → (B, L, C_out)."""
        x = self.temporal[modal](features.transpose(1, 2))
        return self.bn[modal](x).transpose(1, 2)

    def forward_from_embeddings(
        self, video_emb: Tensor, audio_emb: Tensor, bert: Tensor | None = None, vggish: Tensor | None = None
    ) -> Tensor:
        """Everything after the backbones: (B, L, 512), (B, L, 128)[, (B, L, 768), (B, L, 128)] → (B, L, 1).

        ``bert``/``vggish`` go through their own TCN+BN (updating BN statistics in train mode, drawing dropout masks)
        and are then discarded, as in the reference. Their TCNs run after the video and logmel ones.
        """
        video = self._temporal("video", video_emb)
        audio = self._temporal("logmel", audio_emb.float())
        dead: dict[str, Tensor] = {}
        for modal, features in (("bert", bert), ("vggish", vggish)):
            if features is not None:
                dead[modal] = self._temporal(modal, features.float())
        fused = self.TAGF(video, audio)
        x = self.bn1(self.regressor1(fused).transpose(1, 2)).transpose(1, 2)
        out = torch.tanh(self.regressor2(F.leaky_relu(x)))
        self.last_intermediates = {
            "video_emb": video_emb.detach(),
            "audio_emb": audio_emb.detach(),
            "video_tcn": video.detach(),
            "audio_tcn": audio.detach(),
            "fused": fused.detach(),
            **{f"{modal}_tcn": value.detach() for modal, value in dead.items()},
        }
        return out

    def forward(
        self, video: Tensor, logmel: Tensor, bert: Tensor | None = None, vggish: Tensor | None = None
    ) -> Tensor:
        """video (B, L, 3, 40, 40) in [−1, 1]; logmel (B, 64, L, 96); optional bert (B, L, 768), vggish (B, L, 128).

        Returns (B, L, 1) in (−1, 1). L must be :data:`WINDOW` (300): the co-attention key linears act on time.
        """
        video_emb = self.embed_video(video)
        audio_emb = self.embed_logmel(logmel)
        return self.forward_from_embeddings(video_emb, audio_emb, bert=bert, vggish=vggish)

    def forward_batch(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Dict form: keys ``video``, ``logmel`` and optionally ``bert``, ``vggish`` (other keys are ignored)."""
        return self.forward(batch["video"], batch["logmel"], bert=batch.get("bert"), vggish=batch.get("vggish"))


# ----------------------------------------------------------------------------------------------------------------------
# §3.4 gradual-release groups
# ----------------------------------------------------------------------------------------------------------------------

#: (first, last) inclusive indices into ``list(module.parameters())`` of each release, visual then audio.
RELEASE_INDEX_RANGES: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((4, 9), (16, 17)),  # output layer | FC3
    ((163, 186), (14, 15)),  # stage 4 (body units 21–23) | FC2
    ((142, 162), (12, 13)),  # body units 18–20 | FC1
)


def reference_release_groups(model: ReferenceLFAN) -> list[tuple[list[str], list[str]]]:
    """The three §3.4 release groups as (visual names relative to ``spatial.visual``, audio names relative to
    ``spatial.audio.backbone``), selected by index into the modules' ``named_parameters()`` lists."""
    visual = [name for name, _ in model.spatial["visual"].named_parameters()]
    audio_backbone = model.spatial["audio"]
    assert isinstance(audio_backbone, ReferenceAudioBackbone)
    audio = [name for name, _ in audio_backbone.backbone.named_parameters()]
    return [
        (visual[v_first : v_last + 1], audio[a_first : a_last + 1])
        for (v_first, v_last), (a_first, a_last) in RELEASE_INDEX_RANGES
    ]
