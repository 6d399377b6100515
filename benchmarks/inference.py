"""Inference: `tagf predict --video` end to end on one long video, and the two stages it spends its time in.

Setup (not timed): a small synthetic release is preprocessed and a frozen-backbone run of one epoch is trained
for fold 0, both emotions (`predict --video` uses both models of the fold), by `tagf train` in a subprocess.

Each round runs `tagf predict --video` as a fresh process (start-up, imports, model loading, both emotions, the
CSV and the plot included), then, in this process, ``video_arrays`` (decode, Haar face detection, log-mel) and
``predict_arrays`` of the valence model on ``device``. Every figure is the video's frames per second.
"""

from __future__ import annotations

import os
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import av

from benchmarks.common import BenchResult, Figure, Sizes, tagf_executable, timed
from preprocessing import preprocess_release
from preprocessing.discovery import discover_release
from preprocessing.single_video import VideoArrays, video_arrays
from tagf_synth import generate_dataset

if TYPE_CHECKING:
    from tagf_core.config import TagfConfig
    from tagf_core.model import TAGFModel

NAME = "Inference"
STAMP = "bench"
FOLD = 0
MIN_TRIALS = 5
"""Synth has a validation trial only from 5 trials on, and fold 0 cannot train without one."""


def run(sizes: Sizes, root: Path, device: str) -> BenchResult:
    """``sizes.repeats`` rounds of: `tagf predict --video`, then ``video_arrays``, then ``predict_arrays``."""
    root = root.resolve()
    train_bench_run(sizes, root, device)
    video = long_video(root / "long_raw", sizes.predict_video_seconds)
    frames = count_frames(video)
    model, cfg = load_valence_model(root)
    rounds = [time_round(root, video, model, cfg, device) for _ in range(sizes.repeats)]
    predict_seconds, arrays_seconds, model_seconds = (list(column) for column in zip(*rounds, strict=True))
    return BenchResult(
        NAME,
        figures=[
            Figure.of("predict_fps", "frames/s", per_second(frames, predict_seconds), "`tagf predict --video`"),
            Figure.of("video_arrays_fps", "frames/s", per_second(frames, arrays_seconds), "decode, faces, log-mel"),
            Figure.of(
                "model_fps", "frames/s", per_second(frames, model_seconds), f"predict_arrays, one emotion, {device}"
            ),
        ],
        notes=[where_time_goes(video, frames, predict_seconds, arrays_seconds, model_seconds, device)],
    )


# --- setup: a trained run and a long video ------------------------------------------------------------------


def tagf_environment(root: Path, device: str) -> dict[str, str]:
    """This environment with MLflow's store, its artifacts and the training device inside ``root``."""
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "TAGF_TRACKING__ARTIFACT_ROOT": str(root / "mlruns"),
        "TAGF_TRAIN__DEVICE": device,
    }


def run_tagf(arguments: Sequence[str | Path], root: Path, device: str) -> None:
    """Run `tagf ARGUMENTS` to the end; raise with the tail of its stderr if it fails."""
    command = [str(tagf_executable()), *map(str, arguments)]
    done = subprocess.run(command, env=tagf_environment(root, device), capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr[-3000:]}")


def write_train_config(path: Path, sizes: Sizes) -> Path:
    data = f"[data]\nwindow_len = {sizes.window_len}\nhop_len = {sizes.hop_len}\n"
    path.write_text(f"{data}\n[train]\nbatch_size = 4\nmin_epochs = 1\n", encoding="utf-8")
    return path


def preprocessed_release(sizes: Sizes, root: Path) -> Path:
    """A synth release of at least ``MIN_TRIALS`` trials, preprocessed; the processed folder."""
    raw, processed = root / "raw", root / "processed"
    generate_dataset(raw, trials=max(sizes.trials, MIN_TRIALS), seconds=sizes.trial_seconds, seed=0)
    report = preprocess_release(raw, processed, workers=os.cpu_count() or 1)
    if report.failed:
        raise RuntimeError(f"preprocess failed: {'; '.join(o.message for o in report.failed)}")
    return processed


def train_bench_run(sizes: Sizes, root: Path, device: str) -> None:
    """Fold 0, both emotions, frozen backbones, one epoch: the run `predict --video` loads."""
    processed = preprocessed_release(sizes, root)
    config = write_train_config(root / "bench.toml", sizes)
    run_tagf(
        [
            *("train", "--data", processed, "--fold", str(FOLD), "--emotion", "both", "--stamp", STAMP),
            *("--backbone", "frozen", "--max-epochs", "1", "--output-root", root / "outputs", "--config", config),
        ],
        root,
        device,
    )


def long_video(raw: Path, seconds: float) -> Path:
    """The video of a one-trial synth release ``seconds`` long."""
    generate_dataset(raw, trials=1, seconds=seconds, seed=0)
    (source,) = discover_release(raw).trials
    assert source.video is not None
    return source.video


def count_frames(video: Path) -> int:
    """Frames PyAV decodes from the first video stream."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def load_valence_model(root: Path) -> tuple[TAGFModel, TagfConfig]:
    """The run's valence model (eval mode) and its configuration."""
    from tagf_core.inference.predict import load_run_model
    from tagf_core.training.run import RunSpec, saved_config

    spec = RunSpec(STAMP, FOLD, "valence")
    cfg = saved_config(root / "outputs", spec)
    return load_run_model(cfg, spec), cfg


# --- one round ------------------------------------------------------------------------------------------------


def predict_video(root: Path, video: Path) -> None:
    run_tagf(
        [
            *("predict", "--video", video, "--stamp", STAMP, "--fold", str(FOLD)),
            *("--output-root", root / "outputs", "--out", root / "pred"),
        ],
        root,
        "cpu",
    )


def timed_video_arrays(video: Path) -> tuple[float, VideoArrays]:
    """Seconds of one ``video_arrays`` call, and its result."""
    held: list[VideoArrays] = []
    seconds = timed(lambda: held.append(video_arrays(video)))
    return seconds, held[0]


def predict_on(model: TAGFModel, arrays: VideoArrays, cfg: TagfConfig, device: str) -> None:
    from tagf_core.inference.predict import predict_arrays

    predict_arrays(
        model, arrays.faces, arrays.logmel, hop_len=cfg.data.hop_len, crop_size=cfg.data.crop_size,
        batch_size=cfg.train.batch_size, device=device,
    )  # fmt: skip


def time_round(root: Path, video: Path, model: TAGFModel, cfg: TagfConfig, device: str) -> tuple[float, float, float]:
    """Seconds of `tagf predict --video`, of ``video_arrays`` and of ``predict_arrays``, one after the other."""
    predict_seconds = timed(lambda: predict_video(root, video))
    arrays_seconds, arrays = timed_video_arrays(video)
    model_seconds = timed(lambda: predict_on(model, arrays, cfg, device))
    return predict_seconds, arrays_seconds, model_seconds


# --- figures --------------------------------------------------------------------------------------------------


def per_second(frames: int, seconds: list[float]) -> list[float]:
    return [frames / s for s in seconds]


def where_time_goes(
    video: Path, frames: int, predict: list[float], arrays: list[float], model: list[float], device: str
) -> str:
    """Medians of the three timings, and what of the end-to-end time the two stages leave unexplained."""
    e2e, stage_arrays, stage_model = (statistics.median(s) for s in (predict, arrays, model))
    line = (
        f"{video.name}, {frames} frames. Medians: `tagf predict --video` {e2e:.2f} s end to end; "
        f"video_arrays {stage_arrays:.2f} s ({stage_arrays / e2e:.0%}); predict_arrays {stage_model:.2f} s per "
        f"emotion on {device}."
    )
    if device != "cpu":
        return line + " `tagf predict --video` runs its models on the CPU, so its time is not split here."
    rest = e2e - stage_arrays - 2 * stage_model
    return line + (
        f" Both emotions take {2 * stage_model / e2e:.0%}; the remaining {rest:.2f} s ({rest / e2e:.0%}) is process "
        "start-up, imports, reading the configs and loading both models, the CSV and the plot."
    )
