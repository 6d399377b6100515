"""Fitting the ridge probe of a baseline run: closed form, on every real training frame once, in seconds.

Each alpha of ``RIDGE_ALPHAS`` is one step of the run (where TAGF has epochs): the probe is fitted on the
training trials' frames, evaluated on the validation trials exactly as TAGF is (windows, overlap-averaged
per frame, trials concatenated, ref §3.5), and the alpha with the best validation CCC is kept, as TAGF keeps
its best epoch. Features are standardised on the training frames; the intercept is not penalised.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from tagf_core.data.dataset import EMOTIONS, EmbeddingWindowDataset
from tagf_core.model.probe import RidgeProbe

RIDGE_ALPHAS: tuple[float, ...] = (1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5)
"""Penalties tried, one run step each (on standardised features, summed over frames)."""


def probe_training_frames(probe: RidgeProbe, dataset: EmbeddingWindowDataset) -> tuple[np.ndarray, np.ndarray]:
    """(features N×D float64, labels N float64): every real frame of the dataset's trials, once each."""
    features, labels = [], []
    for trial in dataset.records:
        arrays = dataset.trial_arrays(trial)
        chosen = {"video": arrays["video"], "audio": arrays["audio"]}
        features.append(np.concatenate([np.asarray(chosen[m], dtype=np.float64) for m in probe.modalities], axis=1))
        labels.append(np.asarray(arrays["label"][:, EMOTIONS.index(dataset.emotion)], dtype=np.float64))
    return np.concatenate(features), np.concatenate(labels)


def fit_ridge_path(
    features: np.ndarray, labels: np.ndarray, alphas: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, float]]]:
    """Ridge solutions for every alpha from one eigendecomposition.

    Returns (mean D, scale D, [(weight D, bias) per alpha]) for predictions ((x − mean) / scale) · weight + bias;
    a constant feature gets scale 1 (it standardises to 0 and never enters).
    """
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    standardised = (features - mean) / scale  # N×D
    bias = float(labels.mean())
    gram = standardised.T @ standardised  # D×D
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    projected = eigenvectors.T @ (standardised.T @ (labels - bias))  # D
    solutions = [(eigenvectors @ (projected / (eigenvalues + alpha)), bias) for alpha in alphas]
    return mean, scale, solutions


def fit_probe_path(
    probe: RidgeProbe, train_set: EmbeddingWindowDataset, alphas: Sequence[float] = RIDGE_ALPHAS
) -> list[dict[str, Tensor]]:
    """The probe's state dict for every alpha, fitted on ``train_set``'s frames; load one to apply it."""
    features, labels = probe_training_frames(probe, train_set)
    mean, scale, solutions = fit_ridge_path(features, labels, alphas)
    states = []
    for weight, bias in solutions:
        states.append(
            {
                "mean": torch.as_tensor(mean, dtype=torch.float32),
                "scale": torch.as_tensor(scale, dtype=torch.float32),
                "weight": torch.as_tensor(weight, dtype=torch.float32),
                "bias": torch.tensor(bias, dtype=torch.float32),
            }
        )
    return states
