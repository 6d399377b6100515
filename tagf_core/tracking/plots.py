"""The PNGs a run logs: training curves, and prediction against label over one trial's frames.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot): no global backend or figure registry is
touched, so this works headless and in threads, and nothing needs closing. Files are written atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tagf_core.atomic import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)  # the Agg backend, for this figure only
    return figure


def _save(figure: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write(Path(path), buffer.getvalue())


def plot_curves(history: Sequence[Mapping[str, float]], path: Path) -> Path:
    """Train/validation CCC and loss per epoch as a PNG; the best validation epoch is marked.

    ``history``: one mapping per epoch with ``epoch``, ``train/ccc``, ``val/ccc``, ``train/loss``, ``val/loss``
    (a missing value leaves a gap).

    Raises:
        ValueError: ``history`` is empty.
    """
    if not history:
        raise ValueError(f"{path}: no epochs to plot")
    epochs = [float(row["epoch"]) for row in history]

    def series(key: str) -> list[float]:
        return [float(row.get(key, math.nan)) for row in history]

    figure = _new_figure(10, 4)
    ccc_axes, loss_axes = figure.subplots(1, 2)
    for axes, metric in ((ccc_axes, "ccc"), (loss_axes, "loss")):
        for split, style in (("train", "-o"), ("val", "-s")):
            axes.plot(epochs, series(f"{split}/{metric}"), style, markersize=3, label=f"{split}/{metric}")
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric.upper() if metric == "ccc" else metric)
        axes.grid(alpha=0.3)
    val_ccc = np.array(series("val/ccc"))
    if np.isfinite(val_ccc).any():
        best = int(np.nanargmax(val_ccc))
        ccc_axes.axvline(epochs[best], color="grey", linestyle="--", linewidth=1, label=f"best epoch {epochs[best]:g}")
    ccc_axes.legend()
    loss_axes.legend()
    ccc_axes.set_title("concordance correlation coefficient")
    loss_axes.set_title("loss")
    _save(figure, path)
    return Path(path)


def plot_prediction(
    trial: str,
    frames: np.ndarray,
    label: np.ndarray | None,
    prediction: np.ndarray,
    emotion: str,
    path: Path,
) -> Path:
    """Prediction (and label, when known) of ``emotion`` over a trial's ``frames`` as a PNG.

    ``frames``, ``label``, ``prediction``: T values each (frame numbers, values in [−1, 1]).

    Raises:
        ValueError: the arrays differ in length.
    """
    frames = np.asarray(frames).ravel()
    prediction = np.asarray(prediction, dtype=float).ravel()
    lengths = {"frames": len(frames), "prediction": len(prediction)}
    if label is not None:
        label = np.asarray(label, dtype=float).ravel()
        lengths["label"] = len(label)
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{path}: arrays of different lengths {lengths}")
    figure = _new_figure(10, 3)
    axes = figure.subplots()
    if label is not None:
        axes.plot(frames, label, color="black", linewidth=1, label="label")
    axes.plot(frames, prediction, color="tab:red", linewidth=1, label="prediction")
    axes.set_ylim(-1.05, 1.05)
    axes.set_xlabel("frame")
    axes.set_ylabel(emotion)
    axes.set_title(f"{trial}: {emotion}")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right")
    _save(figure, path)
    return Path(path)


def plot_valence_arousal(name: str, seconds: np.ndarray, valence: np.ndarray, arousal: np.ndarray, path: Path) -> Path:
    """Predicted valence and arousal of one video over time (``tagf predict --video``) as a PNG.

    Raises:
        ValueError: the arrays differ in length.
    """
    seconds, valence, arousal = (np.asarray(a, dtype=float).ravel() for a in (seconds, valence, arousal))
    if not len(seconds) == len(valence) == len(arousal):
        raise ValueError(f"{path}: arrays of different lengths {len(seconds)}, {len(valence)}, {len(arousal)}")
    figure = _new_figure(10, 3)
    axes = figure.subplots()
    axes.plot(seconds, valence, color="tab:blue", linewidth=1, label="valence")
    axes.plot(seconds, arousal, color="tab:orange", linewidth=1, label="arousal")
    axes.set_ylim(-1.05, 1.05)
    axes.set_xlabel("time (s)")
    axes.set_title(f"{name}: predicted valence and arousal")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right")
    _save(figure, path)
    return Path(path)
