"""`tagf predict`: a trained run's predictions for a partition, or valence and arousal for any video."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

import typer

from tagf_cli.errors import user_errors
from tagf_cli.options import Emotion, Fold, Model, OutputRoot, Stamp
from tagf_core.config import load_config
from tagf_core.training.run import RunSpec

log = logging.getLogger("tagf")


def run_folder_root(output_root: Path | None) -> Path:
    """Where run folders are: --output-root, else train.output_root of the TAGF_* environment or its default."""
    return load_config(overrides={"train": {"output_root": output_root}}).train.output_root


def predict(
    stamp: Stamp = "tagf",
    fold: Fold = 0,
    emotion: Emotion = "valence",
    model: Model = "tagf",
    partition: Annotated[
        Literal["extra", "validate"], typer.Option("--partition", help="Which trials to predict.")
    ] = "extra",
    video: Annotated[
        Path | None, typer.Option("--video", help="Any video file: faces detected, valence and arousal per frame.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for --video outputs (default: .).")] = None,
    output_root: OutputRoot = None,
) -> None:
    """Write predictions of a trained run: a partition of its data, or any video (--video, both emotions)."""
    with user_errors():
        from tagf_core.inference.predict import predict_run, predict_video
        from tagf_core.training.run import saved_config

        root = run_folder_root(output_root)
        if video is None:
            spec = RunSpec(stamp, fold, emotion, model)
            folder = predict_run(saved_config(root, spec), spec, partition)
            typer.echo(f"predictions for the {partition} partition in {folder}")
            return
        from preprocessing.single_video import video_arrays
        from tagf_core.inference.predict import VideoInput, video_output_paths

        video_output_paths(video.stem, out or Path("."))  # a name too long fails now, not after the inference
        arrays = video_arrays(video)
        for warning in arrays.warnings:
            log.warning("%s: %s", video, warning)
        decoded = VideoInput(video.stem, arrays.faces, arrays.logmel, arrays.frames, arrays.fps)
        csv_path, plot_path = predict_video(decoded, root, stamp, fold, model, out or Path("."))
    typer.echo(f"per-frame valence and arousal of {video} in {csv_path} (plot: {plot_path})")
