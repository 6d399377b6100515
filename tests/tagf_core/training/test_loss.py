"""CCC loss and metrics: the textbook population CCC, masked padding, no NaN on constant windows (ref §3.1, §4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tagf_core.training.loss import ccc_loss, concordance, regression_metrics


def _window(values: list[float]) -> torch.Tensor:
    """One window as 1×L×1 float64."""
    return torch.tensor(values, dtype=torch.float64).view(1, -1, 1)


def _all_real(batch: int, length: int) -> torch.Tensor:
    return torch.ones(batch, length, dtype=torch.bool)


# ---- concordance ---------------------------------------------------------------------------------------------


def test_concordance_hand_values() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0])
    # y = 2x+1: var_x 1.25, var_y 5, cov 2.5, Δμ² 6.25 → 5 / 12.5
    assert concordance(x, 2 * x + 1) == pytest.approx(0.4, abs=1e-12)
    assert concordance(x, x) == pytest.approx(1.0, abs=1e-12)
    assert concordance(x, -x + 3) == pytest.approx(-1.0, abs=1e-12)  # same mean and spread, reversed
    # population statistics: 2·(4/3) / (2/3 + 8/3 + 4) = 4/11; the reference's mixed N−1 variances give 8/27
    assert concordance(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])) == pytest.approx(4 / 11, abs=1e-12)


def test_concordance_is_zero_where_undefined() -> None:
    assert concordance(np.array([0.3]), np.array([0.3])) == 0.0
    assert concordance(np.array([]), np.array([])) == 0.0
    assert concordance(np.full(5, 0.2), np.full(5, 0.2)) == 0.0  # 0/0
    assert concordance(np.array([0.0, np.nan, 1.0]), np.array([0.0, 1.0, 1.0])) == 0.0
    assert concordance(np.array([0.0, np.inf, 1.0]), np.array([0.0, 1.0, 1.0])) == 0.0


def test_concordance_computes_in_float64() -> None:
    # large offsets and small deviations: float32 arithmetic would cancel away most of the digits
    rng = np.random.default_rng(0)
    prediction = (1000.0 + rng.standard_normal(5000) * 0.01).astype(np.float32)
    label = (prediction + rng.standard_normal(5000) * 0.01).astype(np.float32)
    in_float64 = concordance(prediction.astype(np.float64), label.astype(np.float64))
    assert 0.3 < in_float64 < 0.9
    assert concordance(prediction, label) == pytest.approx(in_float64, abs=1e-12)


def test_concordance_rejects_different_lengths() -> None:
    with pytest.raises(ValueError, match="3 values but label has 2"):
        concordance(np.zeros(3), np.zeros(2))


# ---- regression_metrics --------------------------------------------------------------------------------------


def test_regression_metrics_hand_values() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0])
    metrics = regression_metrics(x, 2 * x + 1)
    assert set(metrics) == {"ccc", "rmse", "pcc"}
    assert metrics["ccc"] == pytest.approx(0.4, abs=1e-12)
    assert metrics["pcc"] == pytest.approx(1.0, abs=1e-12)  # linear, so r = 1 although CCC is low
    assert metrics["rmse"] == pytest.approx(math.sqrt((1 + 4 + 9 + 16) / 4), abs=1e-12)  # errors x + 1
    reversed_metrics = regression_metrics(x, np.array([1.0, 0.0, 0.0, -1.0]))
    # deviations (−1.5, −0.5, 0.5, 1.5) and (1, 0, 0, −1): r = −3 / √(5 · 2)
    assert reversed_metrics["pcc"] == pytest.approx(-3 / math.sqrt(10), abs=1e-12)


def test_regression_metrics_pcc_is_zero_when_undefined() -> None:
    metrics = regression_metrics(np.full(4, 0.5), np.array([0.0, 1.0, 0.0, 1.0]))
    assert metrics["pcc"] == 0.0 and metrics["ccc"] == 0.0
    assert metrics["rmse"] == pytest.approx(0.5)
    single = regression_metrics(np.array([0.2]), np.array([0.5]))
    assert single == {"ccc": 0.0, "rmse": pytest.approx(0.3), "pcc": 0.0}


def test_regression_metrics_rejects_empty_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        regression_metrics(np.array([]), np.array([]))


# ---- ccc_loss ------------------------------------------------------------------------------------------------


def test_loss_hand_value_uses_population_statistics() -> None:
    loss = ccc_loss(_window([1.0, 2.0, 3.0]), _window([2.0, 4.0, 6.0]), _all_real(1, 3))
    assert loss.item() == pytest.approx(1 - 4 / 11, abs=1e-9)  # not the reference's 1 − 8/27


def test_loss_is_one_minus_concordance_on_an_unpadded_window() -> None:
    generator = torch.Generator().manual_seed(1)
    prediction = torch.randn(1, 8, 1, generator=generator, dtype=torch.float64)
    label = torch.randn(1, 8, 1, generator=generator, dtype=torch.float64)
    expected = 1 - concordance(prediction.numpy(), label.numpy())
    assert ccc_loss(prediction, label, _all_real(1, 8)).item() == pytest.approx(expected, abs=1e-7)


def test_loss_averages_windows_equally_over_their_real_frames() -> None:
    generator = torch.Generator().manual_seed(2)
    prediction = torch.randn(2, 8, 1, generator=generator, dtype=torch.float64)
    label = torch.randn(2, 8, 1, generator=generator, dtype=torch.float64)
    mask = _all_real(2, 8)
    mask[1, 5:] = False  # window 1: 5 real frames, 3 padded
    ccc_0 = concordance(prediction[0].numpy(), label[0].numpy())
    ccc_1 = concordance(prediction[1, :5].numpy(), label[1, :5].numpy())
    assert ccc_loss(prediction, label, mask).item() == pytest.approx(1 - (ccc_0 + ccc_1) / 2, abs=1e-7)


def test_padded_frames_do_not_change_the_loss() -> None:
    generator = torch.Generator().manual_seed(3)
    prediction = torch.randn(2, 8, 1, generator=generator)
    label = torch.randn(2, 8, 1, generator=generator)
    mask = _all_real(2, 8)
    mask[:, 6:] = False
    before = ccc_loss(prediction, label, mask)
    prediction_padded, label_padded = prediction.clone(), label.clone()
    prediction_padded[:, 6:] = 50.0
    label_padded[:, 6:] = float("nan")
    prediction_padded.requires_grad_(True)
    after = ccc_loss(prediction_padded, label_padded, mask)
    assert after.item() == pytest.approx(before.item(), abs=1e-6)
    after.backward()
    assert prediction_padded.grad is not None
    assert torch.isfinite(prediction_padded.grad).all()
    assert torch.equal(prediction_padded.grad[:, 6:], torch.zeros(2, 2, 1))  # padding gets no gradient


def test_constant_window_gives_a_finite_loss_and_gradient_in_float32() -> None:
    # ref §3.1: with the reference's 1e-50 this is 0/0 = NaN in float32
    prediction = torch.full((1, 6, 1), 0.3, requires_grad=True)
    label = torch.full((1, 6, 1), 0.3)
    loss = ccc_loss(prediction, label, _all_real(1, 6))
    loss.backward()
    assert loss.item() == pytest.approx(1.0)
    assert prediction.grad is not None and torch.isfinite(prediction.grad).all()


def test_perfect_prediction_gives_zero_loss() -> None:
    label = torch.linspace(-0.8, 0.8, 8).repeat(2, 1).view(2, 8, 1)  # zero-mean windows, so −label is the opposite
    assert ccc_loss(label.clone(), label, _all_real(2, 8)).item() == pytest.approx(0.0, abs=1e-6)
    assert ccc_loss(-label, label, _all_real(2, 8)).item() == pytest.approx(2.0, abs=1e-6)


def test_gradient_matches_finite_differences() -> None:
    generator = torch.Generator().manual_seed(4)
    prediction = torch.randn(2, 6, 1, generator=generator, dtype=torch.float64, requires_grad=True)
    label = torch.randn(2, 6, 1, generator=generator, dtype=torch.float64)
    mask = _all_real(2, 6)
    mask[0, 4:] = False
    assert torch.autograd.gradcheck(lambda p: ccc_loss(p, label, mask), (prediction,))


def test_windows_with_fewer_than_two_real_frames_are_skipped() -> None:
    generator = torch.Generator().manual_seed(5)
    prediction = torch.randn(2, 6, 1, generator=generator, dtype=torch.float64)
    label = torch.randn(2, 6, 1, generator=generator, dtype=torch.float64)
    mask = _all_real(2, 6)
    mask[0, 1:] = False  # one real frame: no CCC
    expected = ccc_loss(prediction[1:], label[1:], mask[1:])
    assert ccc_loss(prediction, label, mask).item() == pytest.approx(expected.item(), abs=1e-12)


def test_all_windows_skipped_gives_a_zero_that_backpropagates() -> None:
    prediction = torch.randn(2, 4, 1, requires_grad=True)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[0, 0] = True
    loss = ccc_loss(prediction, torch.randn(2, 4, 1), mask)
    assert loss.item() == 0.0
    loss.backward()
    assert prediction.grad is not None and torch.equal(prediction.grad, torch.zeros(2, 4, 1))


def test_loss_accepts_batch_by_length_without_the_trailing_axis() -> None:
    generator = torch.Generator().manual_seed(6)
    prediction = torch.randn(2, 8, 1, generator=generator)
    label = torch.randn(2, 8, 1, generator=generator)
    mask = _all_real(2, 8)
    assert ccc_loss(prediction.squeeze(-1), label.squeeze(-1), mask).item() == pytest.approx(
        ccc_loss(prediction, label, mask).item(), abs=1e-7
    )


def test_loss_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        ccc_loss(torch.zeros(2, 8, 1), torch.zeros(2, 8), _all_real(2, 8))
    with pytest.raises(ValueError, match="mask"):
        ccc_loss(torch.zeros(2, 8, 1), torch.zeros(2, 8, 1), _all_real(2, 7))
