"""Given the same weights and inputs, eval-mode outputs equal the reference network's within 5e-6 (float32, CPU).

The oracle is ``reference_lfan.py``: an independent re-derivation of the reference LFAN/TAGF from
TAGF-reference.md, with the reference's own module layout and state-dict keys (dead modules included).
Its state dict goes through ``from_reference_state_dict`` exactly as a user's checkpoint would.

Running IR-50 and VGGish on a whole 300-frame window costs about a minute per model on two CPU cores, so
the backbones are compared on a few frames and everything after them on full 300-frame windows; the full
forward is the composition of the two (``test_tagf.py`` checks that composition for our model).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn

from tagf_core.model import TAGFModel, from_reference_state_dict

ATOL = 5e-6


@pytest.fixture(scope="module")
def pair(reference_lfan: ModuleType) -> tuple[Any, TAGFModel]:
    torch.manual_seed(11)
    oracle = reference_lfan.ReferenceLFAN()
    generator = torch.Generator().manual_seed(12)
    for module in oracle.modules():  # non-trivial BN statistics, so eval-mode normalisation is exercised
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    oracle.eval()
    return oracle, from_reference_state_dict(oracle.state_dict())


def test_visual_backbone_equals_the_reference(pair: tuple[Any, TAGFModel]) -> None:
    oracle, model = pair
    video = torch.rand(2, 3, 3, 40, 40, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        expected = oracle.embed_video(video)
        actual = model.embed_faces(video)
    torch.testing.assert_close(actual, expected, rtol=0, atol=ATOL)


def test_audio_backbone_equals_the_reference(pair: tuple[Any, TAGFModel]) -> None:
    oracle, model = pair
    logmel = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(2)) - 4  # B×L×96×64, ours
    with torch.no_grad():
        expected = oracle.embed_logmel(logmel.permute(0, 3, 1, 2))  # the reference's B×64×L×96 (after ToTensor)
        actual = model.embed_logmel(logmel)
    torch.testing.assert_close(actual, expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("seed", [3, 4])
def test_everything_after_the_backbones_equals_the_reference_on_300_frames(
    pair: tuple[Any, TAGFModel], seed: int
) -> None:
    oracle, model = pair
    generator = torch.Generator().manual_seed(seed)
    video = torch.nn.functional.normalize(torch.randn(2, 300, 512, generator=generator), dim=-1)
    audio = torch.randn(2, 300, 128, generator=generator) * 0.5
    with torch.no_grad():
        expected = oracle.forward_from_embeddings(video, audio)
        actual = model.forward_from_embeddings(video, audio)
        video_feats = model.video_norm(model.video_tcn(video.transpose(1, 2))).transpose(1, 2)
        audio_feats = model.audio_norm(model.audio_tcn(audio.transpose(1, 2))).transpose(1, 2)
        _, (video_weights, audio_weights) = model.fuse(video_feats, audio_feats)
    assert actual.shape == (2, 300, 1)
    torch.testing.assert_close(actual, expected, rtol=0, atol=ATOL)
    torch.testing.assert_close(video_weights, oracle.gate_weights["video"], rtol=0, atol=ATOL)
    torch.testing.assert_close(audio_weights, oracle.gate_weights["audio"], rtol=0, atol=ATOL)
    assert expected.std() > 1e-3  # a constant output would make the comparison meaningless
