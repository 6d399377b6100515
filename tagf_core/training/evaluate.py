"""Evaluation: eval-mode predictions of whole trials (overlapping windows averaged per frame), the overall
validation metrics, and the per-trial prediction files of a run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from tagf_core.atomic import atomic_write
from tagf_core.data.layout import FRAMES_FILE
from tagf_core.data.windows import Window, average_window_predictions
from tagf_core.training.loss import ccc_loss
from tagf_core.training.setup import RunSetup

TrialPredictions = dict[str, tuple[np.ndarray, np.ndarray]]
"""trial → (T predictions, T labels)."""


def evaluate(
    model: nn.Module, loader: DataLoader[Any], forward: Callable[[dict[str, Any]], Tensor]
) -> tuple[float, TrialPredictions]:
    """Eval-mode predictions of every trial, overlapping windows averaged per frame (ref §2.7, §3.5).

    Returns (mean window loss, trial → (T predictions, T labels)).
    """
    model.eval()
    losses: list[float] = []
    rows: list[np.ndarray] = []
    label_rows: list[np.ndarray] = []
    windows: list[Window] = []
    with torch.no_grad():
        for batch in loader:
            prediction = forward(batch)
            mask = batch["mask"].to(prediction.device)
            losses.append(float(ccc_loss(prediction, batch["label"].to(prediction.device), mask)))
            rows.append(prediction[..., 0].cpu().numpy())
            label_rows.append(batch["label"][..., 0].numpy())
            windows += [
                Window(trial, int(start), int(length))
                for trial, start, length in zip(batch["trial"], batch["start"], batch["length"], strict=True)
            ]
    if not windows:
        return float("nan"), {}
    predictions = average_window_predictions(np.concatenate(rows), windows)
    labels = average_window_predictions(np.concatenate(label_rows), windows)
    return float(np.mean(losses)), {trial: (predictions[trial], labels[trial]) for trial in predictions}


def evaluate_partition(setup: RunSetup, partition: str) -> tuple[float, TrialPredictions]:
    """``evaluate`` on one partition of the run's fold (train, validate or extra), in order."""
    return evaluate(setup.model, setup.loader(setup.dataset(partition)), setup.forward_batch)


def concatenate(trials: Sequence[str], predictions: TrialPredictions) -> tuple[np.ndarray, np.ndarray]:
    """ref §4: "overall" = all trials concatenated, in the fold's order (``trials``): (predictions, labels)."""
    order = [t for t in trials if t in predictions]
    return (
        np.concatenate([predictions[t][0] for t in order]),
        np.concatenate([predictions[t][1] for t in order]),
    )


def write_predictions(setup: RunSetup, partition: str) -> Path:
    """Per-trial predictions of ``partition`` with the current weights.

    validate → ``<trial>.csv`` with ``frame,label,prediction`` (frame = 1-based video frame number);
    extra → ``<trial>.txt`` in the reference's format: the emotion's name, then one value per frame (ref §2.7).
    """
    folder = setup.paths.predictions(partition)
    folder.mkdir(parents=True, exist_ok=True)
    _, predictions = evaluate_partition(setup, partition)
    for trial, (prediction, label) in predictions.items():
        if partition == "validate":
            frames = np.load(setup.data.root / trial / FRAMES_FILE) + 1
            lines = ["frame,label,prediction"] + [
                f"{int(f)},{lab:.6f},{p:.6f}" for f, lab, p in zip(frames, label, prediction, strict=True)
            ]
        else:
            lines = [setup.spec.emotion] + [f"{p:.6f}" for p in prediction]
        suffix = ".csv" if partition == "validate" else ".txt"
        atomic_write(folder / f"{trial}{suffix}", "\n".join(lines) + "\n")
    return folder
