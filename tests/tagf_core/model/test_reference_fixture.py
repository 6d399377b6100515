"""Checks of the test oracle ``reference_lfan.py`` itself against TAGF-reference.md and its key tables.

The full end-to-end forward (IR-50 and VGGish on 300 frames) takes about a minute on two CPU cores, so the fast
tests run the backbones on a few frames and the rest of the network on a full 300-frame window built from those
embeddings. Set ``REFERENCE_FULL_FORWARD=1`` to also run the whole forward at L = 300.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn

REFERENCE_DIR = Path(__file__).resolve().parent / "reference_keys"  # copies of shared/reference/*.tsv


ref: ModuleType  # the oracle, reference_lfan.py; set for this module's tests by _oracle


@pytest.fixture(autouse=True, scope="module")
def _oracle(reference_lfan: ModuleType) -> None:
    global ref
    ref = reference_lfan


#: The oracle is loaded dynamically, so its classes are opaque to type checkers.
Model = Any


def _read_key_table(name: str) -> dict[str, tuple[tuple[int, ...], str]]:
    path = REFERENCE_DIR / name
    table: dict[str, tuple[tuple[int, ...], str]] = {}
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["key", "shape", "dtype"]
    for line in lines[1:]:
        if not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        assert key not in table, f"duplicate key {key} in {name}"
        table[key] = (dims, dtype)
    return table


def _state_table(module: nn.Module) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in module.state_dict().items()}


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # parameters() de-duplicates the TCN conv aliases


@pytest.fixture(scope="module")
def model() -> Model:
    torch.manual_seed(3407)
    return ref.ReferenceLFAN().eval()


@pytest.fixture(scope="module")
def backbone_pass(model: Model) -> dict[str, torch.Tensor]:
    """One cheap pass of both backbones over 4 random frames / log-mel patches (B=1, L=4), body output captured."""
    generator = torch.Generator().manual_seed(11)
    video = torch.rand(1, 4, 3, 40, 40, generator=generator) * 2 - 1
    logmel = torch.randn(1, 64, 4, 96, generator=generator) * 2 - 4  # (B, mel, L, hop) as after ToTensor
    captured: dict[str, torch.Tensor] = {}
    body = model.spatial["visual"].backbone.body
    handle = body.register_forward_hook(lambda _m, _i, out: captured.__setitem__("body", out))
    try:
        with torch.no_grad():
            video_emb = model.embed_video(video)
            audio_emb = model.embed_logmel(logmel)
    finally:
        handle.remove()
    return {"logmel": logmel, "body": captured["body"], "video_emb": video_emb, "audio_emb": audio_emb}


@pytest.fixture(scope="module")
def window_embeddings(backbone_pass: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The 4 real backbone embeddings spread over a 300-frame window in a random order."""
    order = torch.randint(0, 4, (ref.WINDOW,), generator=torch.Generator().manual_seed(12))
    return backbone_pass["video_emb"][:, order], backbone_pass["audio_emb"][:, order]


# ----------------------------------------------------------------------------------------------------------------------
# Keys and shapes
# ----------------------------------------------------------------------------------------------------------------------


def test_state_dict_matches_lfan_table(model: Model) -> None:
    expected = _read_key_table("lfan_state_dict.tsv")
    actual = _state_table(model)
    assert sorted(set(expected) - set(actual)) == []
    assert sorted(set(actual) - set(expected)) == []
    assert actual == expected
    # Stronger than required: the registration order (hence state_dict order) is the reference's too.
    assert list(actual) == list(expected)


def test_backbone_state_dicts_match_their_tables(model: Model) -> None:
    assert _state_table(model.spatial["visual"]) == _read_key_table("res50_ir_state_dict.tsv")
    assert _state_table(model.spatial["audio"].backbone) == _read_key_table("vggish_state_dict.tsv")


def test_tcn_net_entries_alias_conv1_and_conv2(model: Model) -> None:
    state = model.state_dict()
    for modal, channels in ref.TCN_CHANNELS.items():
        for level in range(len(channels)):
            prefix = f"temporal.{modal}.network.{level}."
            for alias, conv in (("net.0", "conv1"), ("net.4", "conv2")):
                for leaf in ("bias", "weight_g", "weight_v"):
                    same = state[prefix + alias + "." + leaf].data_ptr() == state[prefix + conv + "." + leaf].data_ptr()
                    assert same, prefix + alias + "." + leaf
            block = model.temporal[modal].network[level]
            assert block.net[0] is block.conv1 and block.net[4] is block.conv2


# ----------------------------------------------------------------------------------------------------------------------
# Parameter counts (§1.10) and release groups (§3.4)
# ----------------------------------------------------------------------------------------------------------------------


def test_parameter_counts(model: Model) -> None:
    tagf = model.TAGF
    assert _count(model.spatial["visual"]) == 37_287_624
    assert _count(model.spatial["audio"]) == 72_141_184
    assert {m: _count(model.temporal[m]) for m in ref.MODALITIES} == {
        "video": 7_018_752,
        "logmel": 657_408,
        "bert": 2_608_512,
        "vggish": 139_104,
    }
    assert {m: _count(model.bn[m]) for m in ref.MODALITIES} == {"video": 512, "logmel": 256, "bert": 256, "vggish": 64}
    assert _count(tagf.coattn) == 1_117_168
    assert _count(tagf.coattn.dcn_layers[0].dense_coattn) == 410_744
    assert _count(tagf.video_temporal_encoder) == 1_447_424
    assert _count(tagf.audio_temporal_encoder) == 363_264
    assert _count(tagf.Joint) == 4_991_488
    assert _count(tagf.vregressor) == _count(tagf.aregressor) == 65_793
    assert _count(tagf) == 8_050_930
    assert (_count(model.regressor1), _count(model.bn1), _count(model.regressor2)) == (98_560, 512, 257)
    trained = (
        _count(model.temporal["video"])
        + _count(model.temporal["logmel"])
        + _count(model.bn["video"])
        + _count(model.bn["logmel"])
        + _count(tagf.coattn)
        + _count(tagf.video_temporal_encoder)
        + _count(tagf.audio_temporal_encoder)
        + _count(model.regressor1)
        + _count(model.bn1)
        + _count(model.regressor2)
    )
    assert trained == 10_704_113


def test_visual_parameter_index_map(model: Model) -> None:
    names = [name for name, _ in model.spatial["visual"].named_parameters()]
    assert len(names) == 189
    assert all(n.startswith("backbone.input_layer.") for n in names[0:4])
    assert all(n.startswith("backbone.output_layer.") for n in names[4:10])
    assert all(n.startswith("backbone.body.") for n in names[10:187])
    assert names[187:] == ["logits.weight", "logits.bias"]
    audio = [name for name, _ in model.spatial["audio"].backbone.named_parameters()]
    assert len(audio) == 18
    assert all(n.startswith("features.") for n in audio[:12])


def _units(names: list[str]) -> set[int]:
    return {int(n.split(".")[2]) for n in names}


def test_release_groups(model: Model) -> None:
    groups = ref.reference_release_groups(model)
    assert len(groups) == 3
    (v1, a1), (v2, a2), (v3, a3) = groups
    assert v1 == [
        "backbone.output_layer.0.weight",
        "backbone.output_layer.0.bias",
        "backbone.output_layer.3.weight",
        "backbone.output_layer.3.bias",
        "backbone.output_layer.4.weight",
        "backbone.output_layer.4.bias",
    ]
    assert len(v2) == 24 and _units(v2) == {21, 22, 23} and all(n.startswith("backbone.body.") for n in v2)
    assert v2[:3] == [
        "backbone.body.21.shortcut_layer.0.weight",
        "backbone.body.21.shortcut_layer.1.weight",
        "backbone.body.21.shortcut_layer.1.bias",
    ]
    assert v2[-1] == "backbone.body.23.res_layer.4.bias"
    assert len(v3) == 21 and _units(v3) == {18, 19, 20}
    assert v3[0] == "backbone.body.18.res_layer.0.weight" and v3[-1] == "backbone.body.20.res_layer.4.bias"
    assert a1 == ["embeddings.4.weight", "embeddings.4.bias"]
    assert a2 == ["embeddings.2.weight", "embeddings.2.bias"]
    assert a3 == ["embeddings.0.weight", "embeddings.0.bias"]
    # All body units of stage 4 and the last three of stage 3, nothing else.
    body_units = {int(n.split(".")[2]) for n, _ in model.spatial["visual"].named_parameters() if ".body." in n}
    assert body_units == set(range(24))

    visual = dict(model.spatial["visual"].named_parameters())
    audio = dict(model.spatial["audio"].backbone.named_parameters())
    sizes = [(sum(visual[n].numel() for n in v), sum(audio[n].numel() for n in a)) for v, a in groups]
    assert sizes == [(6_556_160, 524_416), (13_115_392, 16_781_312), (3_542_784, 50_335_744)]


# ----------------------------------------------------------------------------------------------------------------------
# Behaviour
# ----------------------------------------------------------------------------------------------------------------------


def test_visual_backbone_layout_and_unit_norm(backbone_pass: dict[str, torch.Tensor]) -> None:
    assert backbone_pass["body"].shape == (4, 512, 5, 5)  # 40×40 input → 5×5 body map
    emb = backbone_pass["video_emb"]
    assert emb.shape == (1, 4, 512)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(1, 4))


def test_audio_backbone_layout(model: Model, backbone_pass: dict[str, torch.Tensor]) -> None:
    logmel, emb = backbone_pass["logmel"], backbone_pass["audio_emb"]
    vggish = model.spatial["audio"].backbone
    patch = logmel[0, :, 2, :].T.unsqueeze(0)  # frame 2 as (1, 96 hops, 64 mels)
    with torch.no_grad():
        direct = vggish(patch)
        conv = vggish.features(patch.unsqueeze(1))
        manual = vggish.embeddings(conv.permute(0, 2, 3, 1).reshape(1, -1))  # (time 6, freq 4, channel 512) order
    assert conv.shape == (1, 512, 6, 4)
    assert emb.shape == (1, 4, 128)
    torch.testing.assert_close(emb[0, 2], direct[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(direct, manual)
    assert (emb < 0).any(), "no final ReLU: the 128-d embedding can be negative"


def test_tcn_is_causal_and_weight_normed(model: Model) -> None:
    tcn = model.temporal["logmel"]
    x = torch.randn(1, 128, 200)
    y = x.clone()
    y[:, :, 150:] += 5.0
    with torch.no_grad():
        out_x, out_y = tcn(x), tcn(y)
    assert out_x.shape == (1, 128, 200)
    torch.testing.assert_close(out_x[:, :, :150], out_y[:, :, :150])
    assert not torch.allclose(out_x[:, :, 150:], out_y[:, :, 150:])
    block = tcn.network[3]
    assert block.conv1.dilation == (8,) and block.conv1.padding == (32,)
    v, g = block.conv1.weight_v, block.conv1.weight_g
    torch.testing.assert_close(block.conv1.weight, g * v / v.norm(dim=(1, 2), keepdim=True))


def test_eval_forward_window(model: Model, window_embeddings: tuple[torch.Tensor, torch.Tensor]) -> None:
    video_emb, audio_emb = window_embeddings
    with torch.no_grad():
        out = model.forward_from_embeddings(video_emb, audio_emb)
    assert out.shape == (1, ref.WINDOW, 1)
    assert torch.isfinite(out).all()
    assert out.abs().max() < 1
    weights = model.gate_weights
    assert set(weights) == {"video", "audio"}
    for modal, (low, high) in {"video": (0.171, 0.547), "audio": (0.125, 0.636)}.items():
        w = weights[modal]
        assert w.shape == (1, ref.WINDOW, 3)
        torch.testing.assert_close(w.sum(-1), torch.ones(1, ref.WINDOW))
        assert low <= w.min() and w.max() <= high, (modal, w.min(), w.max())
    assert model.last_intermediates["fused"].shape == (1, ref.WINDOW, 384)


def test_gate_weights_bounded_for_any_input(model: Model) -> None:
    """|mean(E)| ≤ 1/√D' for unit-norm E, so softmax(score/0.1) is confined to §1.7's ranges whatever the input."""
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        model.TAGF(torch.randn(2, ref.WINDOW, 256, generator=generator) * 50, torch.randn(2, ref.WINDOW, 128) * 50)
    for modal, dim in (("video", 512), ("audio", 256)):
        bound = 1 / math.sqrt(dim) / 0.1
        w_max = math.exp(bound) / (math.exp(bound) + 2 * math.exp(-bound))
        w_min = math.exp(-bound) / (math.exp(-bound) + 2 * math.exp(bound))
        w = model.gate_weights[modal]
        assert w_min - 1e-6 <= w.min() and w.max() <= w_max + 1e-6
    assert (round(w_min, 3), round(w_max, 3)) == (0.125, 0.636)


def test_dead_branches_do_not_change_the_output(
    model: Model, window_embeddings: tuple[torch.Tensor, torch.Tensor]
) -> None:
    video_emb, audio_emb = window_embeddings
    bert = torch.randn(1, ref.WINDOW, 768)
    vggish = torch.randn(1, ref.WINDOW, 128)
    with torch.no_grad():
        plain = model.forward_from_embeddings(video_emb, audio_emb)
        with_dead = model.forward_from_embeddings(video_emb, audio_emb, bert=bert, vggish=vggish)
    torch.testing.assert_close(plain, with_dead, rtol=0, atol=0)
    assert model.last_intermediates["bert_tcn"].shape == (1, ref.WINDOW, 128)
    assert model.last_intermediates["vggish_tcn"].shape == (1, ref.WINDOW, 32)


def test_train_mode_updates_dead_branch_bn(model: Model, window_embeddings: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Train mode: dead BN statistics still move, and gradients reach the trainable parts but not dead modules."""
    saved = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("spatial.")}
    try:
        model.freeze_backbones()
        model.train()
        video_emb, audio_emb = window_embeddings
        out = model.forward_from_embeddings(video_emb, audio_emb, bert=torch.randn(1, ref.WINDOW, 768))
        assert out.shape == (1, ref.WINDOW, 1)
        assert int(model.bn["bert"].num_batches_tracked) == 1
        assert int(model.bn["vggish"].num_batches_tracked) == 0
        out.sum().backward()
        assert model.TAGF.coattn.dcn_layers[1].dense_coattn.key1_linear.weight.grad is not None
        assert model.TAGF.video_temporal_encoder.init_hidden.grad is not None
        assert model.temporal["video"].network[0].conv1.weight_v.grad is not None
        assert model.TAGF.Joint.linear.weight.grad is None
        assert model.TAGF.vregressor[0].weight.grad is None
        assert model.temporal["bert"].network[0].conv1.weight_v.grad is None
        assert all(p.grad is None for p in model.spatial.parameters())
    finally:
        model.eval()
        model.zero_grad(set_to_none=True)
        model.load_state_dict(saved, strict=False)


def test_backbones_frozen_everything_else_trainable(model: Model) -> None:
    assert not any(p.requires_grad for p in model.spatial.parameters())
    others = [n for n, p in model.named_parameters() if not n.startswith("spatial.") and not p.requires_grad]
    assert others == []


def test_tagf_linear_init_is_xavier_and_lstm_is_default(model: Model) -> None:
    query = model.TAGF.coattn.dcn_layers[0].dense_coattn.query_linear
    assert torch.count_nonzero(query.bias) == 0
    assert query.weight.abs().max() <= math.sqrt(6 / (384 + 384))
    assert torch.count_nonzero(model.TAGF.video_temporal_encoder.linear.bias) == 0
    assert torch.count_nonzero(model.TAGF.video_temporal_encoder.rnn.bias_ih_l0) > 0  # nn.LSTM keeps its own init
    assert torch.count_nonzero(model.regressor1.bias) > 0  # the head keeps PyTorch defaults


@pytest.mark.skipif(
    os.environ.get("REFERENCE_FULL_FORWARD") != "1",
    reason="IR-50 + VGGish on 300 frames: ~30-60 s on 2 CPU cores; opt in",
)
def test_full_forward_b1_l300(model: Model) -> None:
    generator = torch.Generator().manual_seed(3)
    video = torch.rand(1, ref.WINDOW, 3, 40, 40, generator=generator) * 2 - 1
    logmel = torch.randn(1, 64, ref.WINDOW, 96, generator=generator) - 4
    with torch.no_grad():
        out = model(video, logmel)
        stages = model.last_intermediates
        again = model.forward_from_embeddings(stages["video_emb"], stages["audio_emb"])
    assert out.shape == (1, ref.WINDOW, 1) and out.abs().max() < 1
    assert stages["video_emb"].shape == (1, ref.WINDOW, 512) and stages["audio_emb"].shape == (1, ref.WINDOW, 128)
    torch.testing.assert_close(stages["video_emb"].norm(dim=-1), torch.ones(1, ref.WINDOW))
    torch.testing.assert_close(out, again)
    for modal, (low, high) in {"video": (0.171, 0.547), "audio": (0.125, 0.636)}.items():
        w = model.gate_weights[modal]
        assert low <= w.min() and w.max() <= high, (modal, w.min(), w.max())
