"""`tagf predict`: a trained run's predictions for a partition, or valence and arousal for any video."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

import typer

from tagf_cli.errors import user_errors
from tagf_core.config import TagfConfig, load_config
from tagf_core.training.run import ModelName, RunSpec

log = logging.getLogger("tagf")


def run_config(spec: RunSpec, output_root: Path | None) -> TagfConfig:
    from tagf_core.training.run import saved_config

    root = load_config(overrides={"train": {"output_root": output_root}}).train.output_root
    return saved_config(root, spec)


def predict(
    stamp: Annotated[str, typer.Option("--stamp", help="The run's stamp.")] = "tagf",
    fold: Annotated[int, typer.Option("--fold", help="The run's fold.")] = 0,
    emotion: Annotated[
        Literal["valence", "arousal"], typer.Option("--emotion", help="The run's emotion (partition mode).")
    ] = "valence",
    model: Annotated[
        ModelName, typer.Option("--model", help="The run's model: tagf or a baseline (partition mode).")
    ] = "tagf",
    partition: Annotated[
        Literal["extra", "validate"], typer.Option("--partition", help="Which trials to predict.")
    ] = "extra",
    video: Annotated[
        Path | None, typer.Option("--video", help="Any video file: faces detected, valence and arousal per frame.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for --video outputs [default: .].")] = None,
    output_root: Annotated[
        Path | None, typer.Option("--output-root", help="Where run folders are [default: outputs].")
    ] = None,
) -> None:
    """Write predictions of a trained run: a partition of its data, or any video (--video, both emotions)."""
    with user_errors():
        if video is None:
            from tagf_core.training.loop import predict_run

            spec = RunSpec(stamp, fold, emotion, model)
            folder = predict_run(run_config(spec, output_root), spec, partition)
            typer.echo(f"predictions for the {partition} partition in {folder}")
            return
        csv_path, plot_path = predict_video(video, stamp, fold, model, output_root, out or Path("."))
    typer.echo(f"per-frame valence and arousal of {video} in {csv_path} (plot: {plot_path})")


def predict_video(
    video: Path, stamp: str, fold: int, model_name: ModelName, output_root: Path | None, out: Path
) -> tuple[Path, Path]:
    from preprocessing.single_video import video_arrays
    from tagf_core.atomic import atomic_write
    from tagf_core.tracking.plots import plot_valence_arousal
    from tagf_core.training.loop import load_run_model, resolve_device
    from tagf_core.training.predict import predict_arrays

    specs = {emotion: RunSpec(stamp, fold, emotion, model_name) for emotion in ("valence", "arousal")}  # type: ignore[arg-type]
    configs = {emotion: run_config(spec, output_root) for emotion, spec in specs.items()}
    arrays = video_arrays(video)
    for warning in arrays.warnings:
        log.warning("%s: %s", video, warning)
    columns = {}
    for emotion, cfg in configs.items():
        model = load_run_model(cfg, specs[emotion])
        columns[emotion] = predict_arrays(
            model, arrays.faces, arrays.logmel, hop_len=cfg.data.hop_len, device=resolve_device(cfg.train.device)
        )
    frames = arrays.frames + 1
    lines = ["frame,time_s,valence,arousal"] + [
        f"{int(f)},{(f - 1) / arrays.fps:.3f},{v:.6f},{a:.6f}"
        for f, v, a in zip(frames, columns["valence"], columns["arousal"], strict=True)
    ]
    csv_path = out / f"{video.stem}_valence_arousal.csv"
    atomic_write(csv_path, "\n".join(lines) + "\n")
    plot_path = out / f"{video.stem}_valence_arousal.png"
    plot_valence_arousal(video.stem, frames / arrays.fps, columns["valence"], columns["arousal"], plot_path)
    return csv_path, plot_path
