"""What a run leaves for the user and the tracker: its configuration and dataset at the start, the epoch log
after every epoch, and at the end prediction files, plots, summary and the trained model."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tagf_core.atomic import atomic_write
from tagf_core.config import config_to_toml
from tagf_core.data.layout import MANIFEST_NAME
from tagf_core.model import TAGFModel
from tagf_core.model.embeddings import EmbeddingsModel
from tagf_core.tracking.tracker import Tracker
from tagf_core.training.checkpoint import TrainingState
from tagf_core.training.evaluate import write_predictions
from tagf_core.training.setup import RunSetup

log = logging.getLogger(__name__)

LOG_COLUMNS = (
    "epoch", "release_stage", "lr", "train/loss", "train/ccc", "val/loss", "val/ccc", "val/rmse", "val/pcc",
    "best_epoch", "epoch_seconds",
)  # fmt: skip
"""The columns of training_log.csv: one row per epoch (``TrainingState.history``)."""


def finish_run(setup: RunSetup, tracker: Tracker, state: TrainingState) -> None:
    """Write and track what a finished run leaves: predictions, plots, summary.json and the model.

    The caller has loaded the best weights into ``setup.model``.
    """
    from tagf_core.tracking.plots import plot_curves, plot_prediction

    paths = setup.paths
    write_predictions(setup, "validate")
    write_predictions(setup, "extra")
    plot_curves(state.history, paths.plots / "curves.png")
    validate_dir = paths.predictions("validate")
    for trial in list(setup.split.validate)[:3]:
        table = np.loadtxt(validate_dir / f"{trial}.csv", delimiter=",", skiprows=1, ndmin=2)
        plot_prediction(
            trial, table[:, 0], table[:, 1], table[:, 2], setup.spec.emotion, paths.plots / f"validate_{trial}.png"
        )
    spec = setup.spec
    summary = state.summary(
        stamp=spec.stamp, fold=spec.fold, emotion=spec.emotion, model=spec.model, backbone=setup.cfg.train.backbone
    )
    atomic_write(paths.summary, json.dumps(summary, indent=2) + "\n")
    tracker.log_metrics({"best/val_ccc": state.best_ccc, "best/epoch": float(state.best_epoch)}, step=state.next_epoch)
    artifacts = [
        (paths.log, None), (paths.summary, None), (paths.plots, "plots"),
        (paths.folder / "predictions", "predictions"), (paths.best, "weights"),
    ]  # fmt: skip
    for artifact, folder in artifacts:
        tracker.log_artifact(artifact, folder)
    _log_model(setup, tracker, state)
    log.info(
        "%s: best validation CCC %.4f at epoch %d (%s)",
        spec.name, state.best_ccc, state.best_epoch, state.stop_reason,
    )  # fmt: skip


def _log_model(setup: RunSetup, tracker: Tracker, state: TrainingState) -> None:
    """The best weights (loaded by the caller) as an MLflow model linked to the best epoch: the whole model in
    release mode; in frozen mode the part after the backbones and the probe itself (what was trained), tagged
    with the digest of the backbones it expects. Registered too when ``tracking.register_as`` is set."""
    model = setup.model.eval().cpu()
    length = setup.cfg.data.window_len
    crop = setup.cfg.data.crop_size
    if setup.frozen:
        example = {"video_embeddings": torch.zeros(1, length, 512), "audio_embeddings": torch.zeros(1, length, 128)}
        logged: torch.nn.Module = EmbeddingsModel(model) if isinstance(model, TAGFModel) else model
        tags = {"tagf.backbone_digest": setup.backbone_digest or ""}
    else:
        example = {"video": torch.zeros(1, length, 3, crop, crop), "logmel": torch.zeros(1, length, 96, 64)}
        logged, tags = model, {}
    tracker.log_model(logged, example, "model", step=max(state.best_epoch, 0), tags=tags)
    register_as = setup.cfg.tracking.register_as
    if register_as is not None:
        spec = setup.spec
        name = f"{register_as}-{spec.emotion}" + ("" if spec.model == "tagf" else f"-{spec.model}")
        if tracker.register_model(name, state.best_ccc):
            log.info("%s: registered as the champion of %s (validation CCC %.4f)", spec.name, name, state.best_ccc)
    model.to(setup.device)


def render_log(history: Sequence[dict[str, float]]) -> str:
    """training_log.csv: ``LOG_COLUMNS``, one row per epoch; counts as integers, the rest to 6 significant digits."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(LOG_COLUMNS)
    for row in history:
        writer.writerow(
            [int(row[c]) if c in ("epoch", "release_stage", "best_epoch") else f"{row[c]:.6g}" for c in LOG_COLUMNS]
        )
    return buffer.getvalue()


def log_run_start(tracker: Tracker, setup: RunSetup) -> None:
    """The resolved config (config.toml, params) and the dataset's manifest, when a run starts."""
    cfg = setup.cfg
    atomic_write(setup.paths.config, config_to_toml(cfg))
    tracker.log_params(_flatten(cfg.model_dump(mode="json")))
    tracker.log_artifact(setup.paths.config)
    manifest = cfg.data.processed_root / MANIFEST_NAME
    tracker.log_dataset("processed", _file_digest(manifest), str(manifest.resolve()))


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
