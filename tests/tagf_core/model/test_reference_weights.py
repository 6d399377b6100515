"""Reference checkpoints and backbone files load key for key; every bad file fails naming the file and key."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tagf_core.errors import TagfError
from tagf_core.model import build_tagf, from_reference_state_dict
from tagf_core.model.reference_weights import (
    load_audio_backbone_weights,
    load_backbone_weights,
    load_reference_checkpoint,
    load_visual_backbone_weights,
)

StateLike = Callable[..., dict[str, torch.Tensor]]


def test_reference_state_dict_loads_every_used_key(reference_like: StateLike, caplog: pytest.LogCaptureFixture) -> None:
    state = reference_like("lfan_state_dict.tsv")
    with caplog.at_level(logging.DEBUG, logger="tagf_core.model.reference_weights"):
        model = from_reference_state_dict(state)
    assert not model.training
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert model.window_len == 300
    ours = model.state_dict()
    assert torch.equal(
        ours["visual_backbone.body.5.res_layer.1.weight"], state["spatial.visual.backbone.body.5.res_layer.1.weight"]
    )
    assert torch.equal(ours["video_tcn.network.2.conv2.weight_v"], state["temporal.video.network.2.conv2.weight_v"])
    assert torch.equal(
        ours["cross_attention.steps.1.attention.audio_key.weight"],
        state["TAGF.coattn.dcn_layers.1.dense_coattn.key2_linear.weight"],
    )
    assert torch.equal(ours["audio_gate.encoder.init_hidden"], state["TAGF.audio_temporal_encoder.init_hidden"])
    assert torch.equal(ours["head.norm.running_var"], state["bn1.running_var"])
    # the dead modules are listed at debug level, not loaded
    assert "TAGF.Joint.linear.weight" in caplog.text and "temporal.bert.network.0.conv1.bias" in caplog.text
    assert not any("Joint" in k or "bert" in k or "logits" in k for k in ours)


def test_each_key_the_model_uses_is_required(reference_like: StateLike) -> None:
    state = reference_like("lfan_state_dict.tsv")
    del state["TAGF.video_temporal_encoder.rnn.weight_hh_l0"]
    with pytest.raises(TagfError, match=r"missing key video_gate\.encoder\.rnn\.weight_hh_l0"):
        from_reference_state_dict(state)


def test_a_mis_shaped_key_is_named(reference_like: StateLike) -> None:
    state = reference_like("lfan_state_dict.tsv")
    state["regressor1.weight"] = torch.zeros(256, 383)
    with pytest.raises(
        TagfError, match=r"key head\.hidden\.weight has shape \(256, 383\), the model needs \(256, 384\)"
    ):
        from_reference_state_dict(state)


def test_unknown_keys_and_disagreeing_aliases_are_refused(reference_like: StateLike) -> None:
    state = reference_like("lfan_state_dict.tsv")
    state["classifier.weight"] = torch.zeros(3)
    with pytest.raises(TagfError, match="unexpected key classifier.weight"):
        from_reference_state_dict(state)
    state = reference_like("lfan_state_dict.tsv")
    state["temporal.video.network.0.net.0.bias"] = state["temporal.video.network.0.net.0.bias"] + 1
    with pytest.raises(TagfError, match=r"temporal\.video\.network\.0\.net\.0\.bias disagrees"):
        from_reference_state_dict(state)


def test_a_data_parallel_prefix_is_accepted(reference_like: StateLike) -> None:
    state = {f"module.{k}": v for k, v in reference_like("lfan_state_dict.tsv").items()}
    assert from_reference_state_dict(state).window_len == 300


def test_checkpoint_files_load_with_weights_only(reference_like: StateLike, tmp_path: Path) -> None:
    path = tmp_path / "model_state_dict0.61.pth"
    torch.save(reference_like("lfan_state_dict.tsv"), path)
    assert load_reference_checkpoint(path).window_len == 300
    evil = tmp_path / "evil.pth"
    torch.save({"weights": _NotATensor()}, evil)
    with pytest.raises(TagfError, match=r"evil\.pth: weight file holds objects other than tensors"):
        load_reference_checkpoint(evil)


class _NotATensor:
    """An arbitrary object: torch.load(weights_only=True) must refuse to rebuild it."""


def test_backbone_files_load_into_their_backbones(reference_like: StateLike, tmp_path: Path) -> None:
    model = build_tagf(window_len=4)
    visual, audio = tmp_path / "res50_ir_0.887.pth", tmp_path / "vggish.pth"
    visual_state, audio_state = reference_like("res50_ir_state_dict.tsv", 1), reference_like("vggish_state_dict.tsv", 2)
    torch.save(visual_state, visual)
    torch.save(audio_state, audio)
    load_visual_backbone_weights(model, visual)
    load_audio_backbone_weights(model, audio)
    assert torch.equal(model.visual_backbone.output_layer[3].weight, visual_state["backbone.output_layer.3.weight"])
    assert torch.equal(model.audio_backbone.embeddings[4].bias, audio_state["embeddings.4.bias"])


def test_a_wrong_backbone_file_names_the_file_and_the_first_bad_key(reference_like: StateLike, tmp_path: Path) -> None:
    model = build_tagf(window_len=4)
    swapped = tmp_path / "vggish.pth"
    torch.save(reference_like("vggish_state_dict.tsv"), swapped)
    with pytest.raises(TagfError, match=r"vggish\.pth: unexpected key features\.0\.weight"):
        load_visual_backbone_weights(model, swapped)  # the audio file given as the visual one
    short = reference_like("vggish_state_dict.tsv")
    short["embeddings.4.weight"] = torch.zeros(127, 4096)
    torch.save(short, swapped)
    with pytest.raises(TagfError, match=r"vggish\.pth: key embeddings\.4\.weight has shape \(127, 4096\)"):
        load_audio_backbone_weights(model, swapped)
    with pytest.raises(TagfError, match=r"absent\.pth: weight file not found"):
        load_audio_backbone_weights(model, tmp_path / "absent.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(TagfError, match=r"garbage\.pth: unreadable weight file"):
        load_visual_backbone_weights(model, garbage)


def test_missing_backbone_files_warn_once_loudly(caplog: pytest.LogCaptureFixture) -> None:
    import tagf_core.model.reference_weights as reference_weights

    reference_weights._warned.clear()
    model = build_tagf(window_len=4)
    with caplog.at_level(logging.WARNING):
        load_backbone_weights(model, None, None)
        load_backbone_weights(model, None, None)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one per backbone, not one per call
    assert all("NOT be comparable to the paper" in w for w in warnings)
