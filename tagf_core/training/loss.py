"""Concordance correlation coefficient (CCC): the training loss and the evaluation metrics (ref §3.1, §4).

One definition everywhere, the textbook one with population statistics over N frames:

    CCC = 2·cov(p, g) / (var(p) + var(g) + (μ_p − μ_g)²),   cov and var divided by N.

Deliberate deviations from the reference (ref §8):
* the reference mixes an N-divided covariance with (N−1)-divided variances in both the loss (ref §3.1) and the
  metric (ref §4), which puts its CCC a factor of about (N−1)/N below the textbook value;
* the reference's loss includes the zero-padded frames of short trials (ref §3.1); ``ccc_loss`` takes a mask;
* the reference's loss epsilon 1e-50 underflows to 0 in float32, so a constant window with a constant prediction
  gives 0/0 = NaN (ref §3.1); the loss uses 1e-8, which float32 represents.

Pure: tensors or arrays in, numbers out; no I/O and no logging.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

LOSS_EPS = 1e-8
"""Added to the CCC denominator of the loss; representable in float32, unlike the reference's 1e-50 (ref §3.1)."""


def ccc_loss(prediction: Tensor, label: Tensor, mask: Tensor) -> Tensor:
    """1 − mean over windows of the per-window CCC, over each window's real frames only (ref §3.1).

    Args:
        prediction: B×L×1 or B×L.
        label: the same shape as ``prediction``.
        mask: B×L bool, True on real frames, False on padding.

    Returns:
        A scalar in [0, 2]. Windows with fewer than 2 real frames have no CCC and are left out of the mean; if every
        window is left out, a zero that is still connected to ``prediction`` (so ``backward`` works).

    Raises:
        ValueError: shapes that do not match.
    """
    if prediction.shape != label.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and label {tuple(label.shape)} differ in shape")
    if prediction.dim() == 3 and prediction.shape[-1] == 1:
        prediction, label = prediction.squeeze(-1), label.squeeze(-1)  # B×L×1 → B×L
    if prediction.dim() != 2 or mask.shape != prediction.shape:
        raise ValueError(
            f"expected prediction B×L or B×L×1 with mask B×L, got prediction {tuple(prediction.shape)} "
            f"and mask {tuple(mask.shape)}"
        )
    mask = mask.to(torch.bool)
    frames = mask.sum(dim=1)  # B
    usable = frames >= 2
    if not bool(usable.any()):
        return prediction.sum() * 0.0

    count = frames.clamp(min=1).to(prediction.dtype)  # B; clamp only avoids 0/0 in windows dropped below
    # where(), not multiplication by the mask: a NaN in a padded frame must not reach the sums or the gradient.
    zero = prediction.new_zeros(())
    pred = torch.where(mask, prediction, zero)
    gold = torch.where(mask, label.to(prediction.dtype), zero)
    mean_pred = pred.sum(dim=1) / count  # B
    mean_gold = gold.sum(dim=1) / count
    dev_pred = torch.where(mask, pred - mean_pred[:, None], zero)  # B×L, 0 on padding
    dev_gold = torch.where(mask, gold - mean_gold[:, None], zero)
    covariance = (dev_pred * dev_gold).sum(dim=1) / count  # population statistics: divided by N (see module doc)
    var_pred = dev_pred.square().sum(dim=1) / count
    var_gold = dev_gold.square().sum(dim=1) / count
    ccc = 2.0 * covariance / (var_pred + var_gold + (mean_pred - mean_gold).square() + LOSS_EPS)  # B
    # ref §3.1: each window counts once, whatever its number of real frames.
    return 1.0 - ccc[usable].mean()


def concordance(prediction: np.ndarray, label: np.ndarray) -> float:
    """Textbook (population) CCC of two equally long sequences, computed in float64 (ref §4).

    prediction, label: N values each (any shape, flattened). Returns 0.0 where the CCC is undefined or not finite
    (fewer than 2 values, both sequences constant and equal, NaN or Inf), as the reference's NaN/Inf guard does.

    Raises:
        ValueError: the two hold different numbers of values.
    """
    pred, gold = _as_pair(prediction, label)
    if pred.size < 2:
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean_pred, mean_gold = pred.mean(), gold.mean()
        covariance = np.mean((pred - mean_pred) * (gold - mean_gold))
        denominator = pred.var() + gold.var() + (mean_pred - mean_gold) ** 2  # np.var divides by N
        value = float(2.0 * covariance / denominator) if denominator != 0 else math.nan
    return value if math.isfinite(value) else 0.0


def regression_metrics(prediction: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """CCC, RMSE and Pearson r of two equally long sequences (ref §4), as ``{"ccc", "rmse", "pcc"}``.

    prediction, label: N values each (any shape, flattened), N ≥ 1. ``ccc`` as ``concordance``; ``pcc`` is 0.0 where
    Pearson r is undefined (fewer than 2 values, a constant sequence, NaN or Inf). The reference also logs the
    p-value of ``scipy.stats.pearsonr``; it is not computed here.

    Raises:
        ValueError: the two hold different numbers of values, or none.
    """
    pred, gold = _as_pair(prediction, label)
    if pred.size == 0:
        raise ValueError("no frames to score: prediction and label are empty")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rmse = float(np.sqrt(np.mean((pred - gold) ** 2)))
        pcc = math.nan
        if pred.size >= 2:
            dev_pred, dev_gold = pred - pred.mean(), gold - gold.mean()
            spread = np.sqrt(np.sum(dev_pred**2) * np.sum(dev_gold**2))
            if spread != 0:
                pcc = float(np.sum(dev_pred * dev_gold) / spread)
    return {
        "ccc": concordance(pred, gold),
        "rmse": rmse,
        "pcc": pcc if math.isfinite(pcc) else 0.0,
    }


def _as_pair(prediction: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both flattened to float64 N; raises ValueError when their sizes differ."""
    pred = np.asarray(prediction, dtype=np.float64).ravel()
    gold = np.asarray(label, dtype=np.float64).ravel()
    if pred.size != gold.size:
        raise ValueError(f"prediction has {pred.size} values but label has {gold.size}")
    return pred, gold
