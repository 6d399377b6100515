"""The ridge probe of the baseline runs: the closed form is ridge regression, and the module applies it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tagf_core.model.probe import RidgeProbe
from tagf_core.training.probe import fit_ridge_path


def test_the_path_solves_ridge_regression_on_standardised_features() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(3.0, [1.0, 5.0, 0.2], size=(200, 3))
    labels = features @ [0.2, -0.05, 1.0] + rng.normal(0, 0.01, 200)
    alphas = [1e-6, 10.0]
    mean, scale, solutions = fit_ridge_path(features, labels, alphas)
    z = (features - mean) / scale
    for alpha, (weight, bias) in zip(alphas, solutions, strict=True):
        expected = np.linalg.solve(z.T @ z + alpha * np.eye(3), z.T @ (labels - labels.mean()))
        np.testing.assert_allclose(weight, expected, rtol=1e-8, atol=1e-10)
        assert bias == pytest.approx(labels.mean())
    fitted = z @ solutions[0][0] + solutions[0][1]
    assert np.corrcoef(fitted, labels)[0, 1] > 0.999
    assert np.abs(solutions[1][0]).sum() < np.abs(solutions[0][0]).sum()  # a larger penalty shrinks


def test_a_constant_feature_never_enters() -> None:
    features = np.column_stack([np.linspace(-1, 1, 50), np.full(50, 7.0)])
    mean, scale, [(weight, _)] = fit_ridge_path(features, features[:, 0] * 2, [1e-3])
    assert scale[1] == 1.0 and weight[1] == pytest.approx(0.0, abs=1e-12)


def test_the_probe_applies_its_coefficients_per_frame_on_the_chosen_modalities() -> None:
    probe = RidgeProbe(("audio",))
    generator = torch.Generator().manual_seed(0)
    state = {
        "mean": torch.randn(128, generator=generator),
        "scale": torch.rand(128, generator=generator) + 0.5,
        "weight": torch.randn(128, generator=generator),
        "bias": torch.tensor(0.25),
    }
    probe.load_state_dict(state)
    video, audio = torch.randn(2, 5, 512), torch.randn(2, 5, 128)
    expected = ((audio - state["mean"]) / state["scale"]) @ state["weight"] + 0.25
    torch.testing.assert_close(probe(video, audio), expected.unsqueeze(-1))
    assert RidgeProbe(("video", "audio")).features(video, audio).shape == (2, 5, 640)
    with pytest.raises(ValueError, match="modalities"):
        RidgeProbe(())
