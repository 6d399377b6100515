"""The run's PNGs: written whole (atomically), readable as images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagf_core.tracking.plots import plot_curves, plot_prediction

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) read from the PNG header."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_curves_are_a_png(tmp_path: Path) -> None:
    history = [
        {"epoch": e, "train/ccc": 0.1 * e, "val/ccc": 0.08 * e, "train/loss": 1 - 0.1 * e, "val/loss": 1 - 0.08 * e}
        for e in range(6)
    ]
    path = plot_curves(history, tmp_path / "plots" / "curves.png")
    assert path == tmp_path / "plots" / "curves.png"
    assert _image_size(path) == (1000, 400)
    assert path.stat().st_size > 5000  # axes, lines and labels, not a blank canvas
    assert sorted(p.name for p in path.parent.iterdir()) == ["curves.png"]  # no temporary file left behind


def test_curves_tolerate_missing_values_and_refuse_an_empty_history(tmp_path: Path) -> None:
    plot_curves([{"epoch": 0, "train/loss": 0.9}, {"epoch": 1, "val/ccc": float("nan")}], tmp_path / "c.png")
    assert _image_size(tmp_path / "c.png") == (1000, 400)
    with pytest.raises(ValueError, match="no epochs"):
        plot_curves([], tmp_path / "empty.png")


def test_prediction_plot_with_and_without_label(tmp_path: Path) -> None:
    frames = np.arange(1, 101)
    prediction = np.sin(frames / 10) * 0.5
    labelled = plot_prediction("trial-1", frames, np.cos(frames / 10), prediction, "valence", tmp_path / "a.png")
    unlabelled = plot_prediction("trial-2", frames, None, prediction, "arousal", tmp_path / "b.png")
    assert _image_size(labelled) == _image_size(unlabelled) == (1000, 300)
    assert labelled.read_bytes() != unlabelled.read_bytes()


def test_prediction_plot_refuses_arrays_of_different_lengths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="different lengths"):
        plot_prediction("t", np.arange(5), np.zeros(4), np.zeros(5), "valence", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
