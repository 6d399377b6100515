"""Predictions of trained runs: again for a partition of their data (``predict_run``), for arrays that are not part
of a preprocessed dataset (``predict_arrays``), and for any video file (``predict_video``, both emotions)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tagf_core.atomic import atomic_write
from tagf_core.config import TagfConfig
from tagf_core.data.layout import EMOTIONS
from tagf_core.data.transforms import transform_video
from tagf_core.data.windows import average_window_predictions, trial_windows
from tagf_core.errors import TagfError
from tagf_core.model import TAGFModel
from tagf_core.training.checkpoint import load_torch
from tagf_core.training.evaluate import write_predictions
from tagf_core.training.run import ModelName, RunPaths, RunSpec, read_run_record, run_config, saved_config
from tagf_core.training.setup import RunData, build_model, resolve_device, setup_run


def predict_run(cfg: TagfConfig, spec: RunSpec, partition: str) -> Path:
    """Write a trained run's predictions for ``partition`` (validate or extra) again, from its best weights."""
    cfg = run_config(cfg, spec)
    paths = RunPaths.of(cfg.train.output_root, spec)
    if not paths.best.exists():
        raise TagfError(f"{paths.best}: no best weights; train the run first (`tagf train`)")
    debug = bool(read_run_record(paths).get("debug", False))
    setup = setup_run(cfg, spec, paths, RunData.read(cfg.data.processed_root), debug=debug)
    setup.model.load_state_dict(load_torch(paths.best, "best weights")["model"], strict=not setup.frozen)
    return write_predictions(setup, partition)


def load_run_model(cfg: TagfConfig, spec: RunSpec) -> TAGFModel:
    """A trained run's model in eval mode on the CPU: backbones from ``train.weights_dir``, the rest from best.pt."""
    paths = RunPaths.of(cfg.train.output_root, spec)
    if not paths.best.exists():
        raise TagfError(f"{paths.best}: no best weights; train the run first (`tagf train`)")
    if spec.probe:
        raise TagfError(f"{paths.folder}: a {spec.model} probe reads cached embeddings, not images; use --partition")
    model = build_model(cfg, spec)
    model.load_state_dict(load_torch(paths.best, "best weights")["model"], strict=cfg.train.backbone != "frozen")
    return model.eval()


@dataclass(frozen=True)
class VideoInput:
    """What ``predict_video`` needs of a video, decoded by the caller (``preprocessing.single_video``)."""

    name: str
    """Names the output files (the video's stem)."""
    faces: np.ndarray
    """T×48×48×3 uint8 faces, black where none was found."""
    logmel: np.ndarray
    """T×96×64 log-mel patches, one per frame."""
    frames: np.ndarray
    """T 0-based video frame numbers."""
    fps: float


def video_output_paths(name: str, out: Path) -> tuple[Path, Path]:
    """``<out>/<name>_valence_arousal.csv`` and ``.png``, the files ``predict_video`` writes for a video whose stem
    is ``name``. Call it before decoding the video, so that a name too long fails before any work.

    Raises:
        TagfError: a file name is longer than the file system of ``out`` allows.
    """
    paths = (Path(out) / f"{name}_valence_arousal.csv", Path(out) / f"{name}_valence_arousal.png")
    longest = _longest_name(Path(out))
    for path in paths:
        size = len(os.fsencode(path.name))
        if size > longest:
            raise TagfError(
                f"{path}: file name too long ({size} bytes; this file system allows {longest}): rename the video"
            )
    return paths


def _longest_name(folder: Path) -> int:
    """NAME_MAX of the file system ``folder`` is (or will be) on: that of its nearest existing ancestor."""
    for existing in (folder.absolute(), *folder.absolute().parents):
        if existing.exists():
            try:
                return os.pathconf(existing, "PC_NAME_MAX")
            except (OSError, ValueError):
                break
    return 255  # ext4, xfs, btrfs, tmpfs


def predict_video(
    video: VideoInput, output_root: Path, stamp: str, fold: int, model_name: ModelName, out: Path
) -> tuple[Path, Path]:
    """Per-frame valence and arousal of a decoded video from the runs of ``stamp``/``fold``/``model_name`` (both
    emotions), windows as for a validation trial. Writes ``<out>/<name>_valence_arousal.csv`` (frame, time_s,
    valence, arousal) and a plot; returns both paths."""
    from tagf_core.tracking.plots import plot_valence_arousal

    csv_path, plot_path = video_output_paths(video.name, out)
    columns = {}
    for emotion in EMOTIONS:
        spec = RunSpec(stamp, fold, emotion, model_name)
        cfg = saved_config(output_root, spec)
        model = load_run_model(cfg, spec)
        columns[emotion] = predict_arrays(
            model, video.faces, video.logmel, hop_len=cfg.data.hop_len, crop_size=cfg.data.crop_size,
            batch_size=cfg.train.batch_size, device=resolve_device(cfg.train.device),
        )  # fmt: skip
    frames = video.frames + 1
    lines = ["frame,time_s,valence,arousal"] + [
        f"{int(f)},{(f - 1) / video.fps:.3f},{v:.6f},{a:.6f}"
        for f, v, a in zip(frames, columns["valence"], columns["arousal"], strict=True)
    ]
    atomic_write(csv_path, "\n".join(lines) + "\n")
    plot_valence_arousal(video.name, frames / video.fps, columns["valence"], columns["arousal"], plot_path)
    return csv_path, plot_path


def predict_arrays(
    model: TAGFModel,
    faces: np.ndarray,
    logmel: np.ndarray,
    *,
    hop_len: int,
    crop_size: int,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Per-frame predictions (T,) of an eval-mode model for faces T×48×48×3 uint8 and logmel T×96×64.

    Windows, padding, centre crop and overlap averaging exactly as for a validation trial (ref §2.5–2.7).
    """
    length = model.window_len
    windows = trial_windows("video", len(faces), length, hop_len)
    rows = []
    model.eval().to(device)
    with torch.no_grad():
        for first in range(0, len(windows), batch_size):
            chunk = windows[first : first + batch_size]
            video = torch.stack(
                [
                    transform_video(_padded(faces, w.start, w.length, length), train=False, crop_size=crop_size)
                    for w in chunk
                ]
            )
            audio = torch.stack(
                [torch.from_numpy(_padded(logmel, w.start, w.length, length).astype(np.float32)) for w in chunk]
            )
            rows.append(model(video=video.to(device), logmel=audio.to(device))[..., 0].cpu().numpy())
    return average_window_predictions(np.concatenate(rows), windows)["video"]


def _padded(array: np.ndarray, start: int, count: int, length: int) -> np.ndarray:
    """``count`` frames from ``start``, zero-padded to ``length`` (black faces, silent patches; ref §2.5)."""
    window = np.zeros((length, *array.shape[1:]), dtype=array.dtype)
    window[:count] = array[start : start + count]
    return window
