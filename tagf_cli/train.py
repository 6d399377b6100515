"""`tagf train` and `tagf resume`: fold × emotion runs, tracked in MLflow under one parent run per stamp."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Annotated, Literal

import typer

from tagf_cli.errors import user_errors
from tagf_cli.progress import EpochProgress
from tagf_core.config import TagfConfig, TrainConfig, load_config
from tagf_core.errors import TagfError

log = logging.getLogger("tagf")

EmotionChoice = Literal["valence", "arousal", "both"]


def _git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


def run_folds(
    cfg: TagfConfig, stamp: str, folds: list[int], emotions: list[str], *, resume: bool, overwrite: bool, debug: bool
) -> None:
    """Train every fold × emotion in sequence, one MLflow child run each under the stamp's parent run."""
    from tagf_core.tracking.mlflow_tracker import MlflowSession, resolve_tracking_uri
    from tagf_core.training.loop import train_run
    from tagf_core.training.run import RunSpec

    specs = [RunSpec(stamp, fold, emotion) for fold in folds for emotion in emotions]  # type: ignore[arg-type]
    session = MlflowSession(
        resolve_tracking_uri(cfg.tracking.tracking_uri), cfg.tracking.experiment_name, cfg.tracking.artifact_root
    )
    session.check_reachable()
    parent = session.parent_run(stamp)
    commit = _git_commit()
    results = []
    for spec in specs:
        tags = {
            "stamp": stamp, "fold": str(spec.fold), "emotion": spec.emotion, "backbone": cfg.train.backbone,
            "git_commit": commit,
        }  # fmt: skip

        def open_tracker(run_id: str | None, name: str = spec.name, tags: dict[str, str] = tags) -> object:
            return session.child(parent, name, tags, run_id=run_id)

        with EpochProgress(spec.name) as progress:
            result = train_run(
                cfg,
                spec,
                open_tracker,
                resume=resume,
                overwrite=overwrite,
                debug=debug,
                callbacks=progress,  # type: ignore[arg-type]
            )
        results.append(result)
        typer.echo(
            f"{spec.name}: best validation CCC {result.best_val_ccc:.4f} at epoch {result.best_epoch} "
            f"({result.stop_reason}); run {result.run_id}; files in {result.paths.folder}"
        )


def train(
    data: Annotated[
        Path | None, typer.Option("--data", help="Preprocessed data folder [default: data.processed_root].")
    ] = None,
    fold: Annotated[list[int] | None, typer.Option("--fold", help="Fold 0–5; repeat for several [default: 0].")] = None,
    emotion: Annotated[
        EmotionChoice | None,
        typer.Option("--emotion", help="valence, arousal, or both (two models) [default: data.emotion]."),
    ] = None,
    stamp: Annotated[
        str, typer.Option("--stamp", help="Name of this experiment; runs go to <output-root>/<stamp>/.")
    ] = "tagf",
    backbone: Annotated[
        Literal["release", "frozen"] | None,
        typer.Option("--backbone", help=TrainConfig.model_fields["backbone"].description),
    ] = None,
    max_epochs: Annotated[
        int | None, typer.Option("--max-epochs", help="Maximum epochs [default: 100, ref §3.5].")
    ] = None,
    weights_dir: Annotated[
        Path | None, typer.Option("--weights-dir", help=TrainConfig.model_fields["weights_dir"].description)
    ] = None,
    output_root: Annotated[
        Path | None, typer.Option("--output-root", help="Where run folders go [default: outputs].")
    ] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", help="MLflow experiment [default: tagf].")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="One trial per fold chunk, as the reference's -debug 1.")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue runs of this stamp from their checkpoints.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Delete existing run folders of this stamp and start again.")
    ] = False,
) -> None:
    """Train TAGF on folds × emotions; every run is tracked in MLflow (params, CCC curves, model, predictions)."""
    with user_errors():
        if resume and overwrite:
            raise TagfError("--resume and --overwrite contradict each other: choose one")
        cfg = load_config(
            config_file,
            {
                "data": {"processed_root": data},
                "train": {
                    "backbone": backbone,
                    "max_epochs": max_epochs,
                    "weights_dir": weights_dir,
                    "output_root": output_root,
                },
                "tracking": {"experiment_name": experiment},
            },
        )
        folds = fold or [cfg.data.fold]
        chosen = emotion or cfg.data.emotion
        emotions = ["valence", "arousal"] if chosen == "both" else [chosen]
        run_folds(cfg, stamp, folds, emotions, resume=resume, overwrite=overwrite, debug=debug)


def resume(
    stamp: Annotated[str, typer.Option("--stamp", help="The stamp of the run to continue.")],
    fold: Annotated[int, typer.Option("--fold", help="Fold of the run.")] = 0,
    emotion: Annotated[
        Literal["valence", "arousal"], typer.Option("--emotion", help="Emotion of the run.")
    ] = "valence",
    output_root: Annotated[
        Path | None, typer.Option("--output-root", help="Where run folders are [default: outputs].")
    ] = None,
    max_epochs: Annotated[
        int | None, typer.Option("--max-epochs", help="New epoch limit (may extend a finished run).")
    ] = None,
) -> None:
    """Continue a run from its last checkpoint, in the same MLflow run, with the configuration it was started with."""
    from tagf_core.training.run import RunSpec, saved_config

    with user_errors():
        root = output_root or TrainConfig.model_fields["output_root"].default
        cfg = saved_config(root, RunSpec(stamp, fold, emotion), max_epochs=max_epochs)
        run_folds(cfg, stamp, [fold], [emotion], resume=True, overwrite=False, debug=False)
