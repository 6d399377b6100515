"""The TAGF network's observable properties: shapes, causality, gate bounds, the embeddings path, devices."""

from __future__ import annotations

import pytest
import torch

from tagf_core.model import build_tagf
from tagf_core.model.gate import StepGate
from tagf_core.model.tcn import TemporalConvNet


def _inputs(batch: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    video = torch.rand(batch, length, 3, 40, 40, generator=generator) * 2 - 1
    logmel = torch.randn(batch, length, 96, 64, generator=generator) - 4
    return video, logmel


@pytest.mark.parametrize("window_len", [1, 5, 9])
def test_output_is_one_value_per_frame_in_the_tanh_range(window_len: int) -> None:
    torch.manual_seed(0)
    model = build_tagf(window_len=window_len).eval()
    video, logmel = _inputs(2, window_len)
    with torch.no_grad():
        out = model(video=video, logmel=logmel)
    assert out.shape == (2, window_len, 1)
    assert bool(((out > -1) & (out < 1)).all())


def test_training_mode_forward_and_backward_reach_the_head_only() -> None:
    torch.manual_seed(0)
    model = build_tagf(window_len=6).train()
    video, logmel = _inputs(2, 6)
    model(video, logmel).sum().backward()
    assert all(p.grad is None for p in model.backbone_parameters())  # frozen as in the reference
    assert all(p.grad is not None for p in _after_backbones(model))


def test_a_window_of_the_wrong_length_is_refused() -> None:
    model = build_tagf(window_len=8)
    video, logmel = _inputs(1, 9)
    with pytest.raises(ValueError, match="9 frames per window but the model was built for window_len 8"):
        model(video, logmel)


def test_tcn_is_causal_with_a_121_frame_receptive_field() -> None:
    torch.manual_seed(0)
    tcn = TemporalConvNet(16, (16, 8, 8, 8), kernel_size=5).eval()
    x = torch.randn(1, 16, 300)
    changed = x.clone()
    changed[..., 200:] += torch.randn(1, 16, 100)  # rewrite the future from frame 200 on
    with torch.no_grad():
        before, after = tcn(x), tcn(changed)
    assert torch.equal(before[..., :200], after[..., :200])
    assert not torch.allclose(before[..., 200:], after[..., 200:])
    far_past = x.clone()
    far_past[..., 79] += 5.0  # frame 200 sees frames 80–200 (121 frames); frame 199 sees 79–199
    with torch.no_grad():
        shifted = tcn(far_past)
    assert torch.equal(shifted[..., 200:], before[..., 200:])
    assert not torch.equal(shifted[..., 199], before[..., 199])


@pytest.mark.parametrize(("dim", "hidden", "low", "high"), [(256, 512, 0.171, 0.547), (128, 256, 0.125, 0.636)])
def test_gate_weights_sum_to_one_within_the_reference_bounds(dim: int, hidden: int, low: float, high: float) -> None:
    torch.manual_seed(0)
    gate = StepGate(dim, hidden).eval()
    for scale in (0.1, 1.0, 100.0):
        steps = torch.randn(3, 5, 3, dim) * scale
        with torch.no_grad():
            fused, weights = gate(steps)
        assert fused.shape == (3, 5, dim) and weights.shape == (3, 5, 3)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5))
        assert weights.min() >= low and weights.max() <= high
        torch.testing.assert_close(fused, (steps * weights.unsqueeze(-1)).sum(2))  # weights × un-encoded stack


def test_embeddings_path_equals_the_full_forward_in_eval_mode() -> None:
    torch.manual_seed(1)
    model = build_tagf(window_len=6).eval()
    video, logmel = _inputs(2, 6, seed=3)
    with torch.no_grad():
        full = model(video, logmel)
        faces = model.embed_faces(video, batch_size=5)  # batches that do not divide B·L, on purpose
        patches = model.embed_logmel(logmel, batch_size=7)
        from_embeddings = model.forward_from_embeddings(faces, patches)
    assert faces.shape == (2, 6, 512) and patches.shape == (2, 6, 128)
    torch.testing.assert_close(from_embeddings, full, rtol=0, atol=1e-6)


def test_embedding_runs_the_backbones_in_eval_mode_and_restores_train_mode() -> None:
    torch.manual_seed(1)
    model = build_tagf(window_len=4).train()
    video, _ = _inputs(1, 4)
    first = model.embed_faces(video)
    second = model.embed_faces(video)  # train-mode BN/dropout would make these differ
    assert torch.equal(first, second)
    assert model.visual_backbone.training


def test_trained_parameters_match_the_reference_count_without_dead_modules() -> None:
    model = build_tagf()
    # ref §1.10: "effectively trained, excluding backbones" = 10,704,113
    assert sum(p.numel() for p in _after_backbones(model)) == 10_704_113
    # IR-50 without the unused 8-class logits (37,287,624 − 4,104) and VGGish
    assert sum(p.numel() for p in model.visual_backbone.parameters()) == 37_283_520
    assert sum(p.numel() for p in model.audio_backbone.parameters()) == 72_141_184


def test_runs_on_the_cpu_with_no_cuda_and_on_any_device_it_is_moved_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = build_tagf(window_len=4).eval()
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    video, logmel = _inputs(1, 4)
    with torch.no_grad():
        assert model(video, logmel).device.type == "cpu"
    meta = model.to(torch.device("meta"))  # nothing inside may pin a device
    out = meta(video.to("meta"), logmel.to("meta"))
    assert out.device.type == "meta" and out.shape == (1, 4, 1)


def test_the_config_sizes_the_model() -> None:
    from tagf_core.config import load_config
    from tagf_core.model import build_tagf_from_config

    cfg = load_config(overrides={"model": {"video_tcn_channels": [64, 32], "audio_tcn_channels": [16, 16]}})
    model = build_tagf_from_config(cfg.model, window_len=5)
    assert model.window_len == 5
    assert model.head.hidden.in_features == 32 + 16
    video, logmel = _inputs(1, 5)
    with torch.no_grad():
        assert model.eval()(video, logmel).shape == (1, 5, 1)


def test_embedding_no_frames_gives_an_empty_batch() -> None:
    model = build_tagf(window_len=4)
    assert model.embed_faces(torch.zeros(0, 3, 40, 40)).shape == (0, 512)
    assert model.embed_logmel(torch.zeros(2, 0, 96, 64)).shape == (2, 0, 128)


def _after_backbones(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """What is trained while the backbones are frozen: every parameter after them."""
    return [p for n, p in model.named_parameters() if not n.startswith(("visual_backbone.", "audio_backbone."))]
