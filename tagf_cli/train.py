"""`tagf train` and `tagf resume`: fold × emotion runs, tracked in MLflow under one parent run per stamp."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from tagf_cli.errors import user_errors
from tagf_cli.options import (
    ConfigFile,
    Emotion,
    Experiment,
    Fold,
    Model,
    OutputRoot,
    SetOverrides,
    Stamp,
    config_help,
    settings_changed,
    with_set_overrides,
)
from tagf_cli.progress import EpochProgress
from tagf_core.config import TagfConfig, config_to_toml, load_config
from tagf_core.errors import TagfError
from tagf_core.launch.ray_executor import DEFAULT_MAX_RETRIES

if TYPE_CHECKING:
    from tagf_core.launch.job import JobEvent

log = logging.getLogger("tagf")

EmotionChoice = Literal["valence", "arousal", "both"]
MAX_RETRIES_HELP = f"Ray: restarts of a run whose worker died; it resumes (default: {DEFAULT_MAX_RETRIES})."
MODEL_HELP = (
    "What to train; repeat for several, each a run beside the others: tagf (default); baselines concat (TAGF's "
    "TCNs and head without cross-attention or gate), ridge, ridge-video, ridge-audio (linear probes on the frozen "
    "embeddings, seconds); all = tagf and every baseline."
)


def run_folds(
    cfg: TagfConfig,
    stamp: str,
    folds: list[int],
    emotions: list[str],
    *,
    models: list[str] | None = None,
    resume: bool,
    overwrite: bool,
    debug: bool,
    executor: str = "local",
    ray_address: str | None = None,
    max_retries: int | None = None,
) -> None:
    """Train every fold × emotion (in sequence, or as Ray tasks), then show the stamp's table."""
    from rich.console import Console

    from tagf_cli.tables import render_model_table, render_table
    from tagf_core.launch.jobs import launch_runs
    from tagf_core.launch.ray_executor import RayOptions
    from tagf_core.results.collect import collect_runs, compare_models

    models = models or ["tagf"]
    results = launch_runs(
        cfg, stamp, folds, emotions, models=models, resume=resume, overwrite=overwrite, debug=debug,
        executor=executor,  # type: ignore[arg-type]
        progress=EpochProgress, on_event=print_event,
        ray_options=RayOptions(ray_address, DEFAULT_MAX_RETRIES if max_retries is None else max_retries),
    )  # fmt: skip
    for result in results if executor == "local" else []:  # Ray runs were announced as they finished
        typer.echo(
            f"{result.name}: best validation CCC {result.best_val_ccc:.4f} at epoch {result.best_epoch} "
            f"({result.stop_reason}); run {result.run_id}; files in {result.folder}"
        )
    if executor == "ray" or len(results) > 1:
        Console().print(
            render_table(collect_runs(cfg.train.output_root, stamp, models[0]))
        )  # `collect --model` shows the others
        if len(models) > 1:
            Console().print(render_model_table(compare_models(cfg.train.output_root, stamp)))


def print_event(event: JobEvent) -> None:
    """One line per thing a Ray run reports: started (or restarted and resumed), an epoch, finished, failed."""
    if event.kind == "epoch":
        row = event.row
        typer.echo(
            f"{event.name} epoch {int(row['epoch'])}: val ccc {row['val/ccc']:.4f} | best epoch "
            f"{int(row['best_epoch'])} | {row['epoch_seconds']:.1f}s"
        )
    else:
        typer.echo(f"{event.name} {event.kind}: {event.text}", err=event.kind == "failed")


def train(
    data: Annotated[Path | None, typer.Option("--data", help=config_help("data.processed_root"))] = None,
    fold: Annotated[
        list[int] | None, typer.Option("--fold", help="Fold 0–5 (ref §2.4); repeat for several (default: 0).")
    ] = None,
    emotion: Annotated[
        EmotionChoice, typer.Option("--emotion", help="valence, arousal, or both (two models, ref §1.1).")
    ] = "valence",
    stamp: Stamp = "tagf",
    model: Annotated[list[str] | None, typer.Option("--model", metavar="MODEL", help=MODEL_HELP)] = None,
    backbone: Annotated[
        Literal["release", "frozen"] | None, typer.Option("--backbone", help=config_help("train.backbone"))
    ] = None,
    max_epochs: Annotated[int | None, typer.Option("--max-epochs", help=config_help("train.max_epochs"))] = None,
    weights_dir: Annotated[Path | None, typer.Option("--weights-dir", help=config_help("train.weights_dir"))] = None,
    embeddings_root: Annotated[
        Path | None, typer.Option("--embeddings-root", help=config_help("data.embeddings_root"))
    ] = None,
    output_root: OutputRoot = None,
    experiment: Experiment = None,
    config_file: ConfigFile = None,
    settings: SetOverrides = None,
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print the resolved configuration as TOML and exit; train nothing.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="One trial per fold chunk, as the reference's -debug 1.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue runs of this stamp from their checkpoints; start those never started."),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Delete existing run folders of this stamp and start again.")
    ] = False,
    executor: Annotated[
        Literal["local", "ray"],
        typer.Option("--executor", help="local: the runs one after the other here; ray: one Ray task per run."),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Ray cluster to use (default: RAY_ADDRESS, else a local Ray)."),
    ] = None,
    max_retries: Annotated[
        int | None,
        typer.Option(
            "--max-retries",
            min=0,
            help=MAX_RETRIES_HELP,
        ),
    ] = None,
) -> None:
    """Train TAGF on folds × emotions; every run is tracked in MLflow (params, CCC curves, model, predictions)."""
    with user_errors():
        if resume and overwrite:
            raise TagfError("--resume and --overwrite contradict each other: choose one")
        cfg = load_config(
            config_file,
            with_set_overrides(
                settings,
                {
                    "data": {"processed_root": data, "embeddings_root": embeddings_root},
                    "train": {
                        "backbone": backbone,
                        "max_epochs": max_epochs,
                        "weights_dir": weights_dir,
                        "output_root": output_root,
                    },
                    "tracking": {"experiment_name": experiment},
                },
            ),
        )
        if print_config:
            typer.echo(config_to_toml(cfg), nl=False)
            return
        folds = fold or [0]  # 0: the official train/validation split
        emotions = ["valence", "arousal"] if emotion == "both" else [emotion]
        if executor == "local" and (ray_address is not None or max_retries is not None):
            raise TagfError("--ray-address and --max-retries are for --executor ray")
        for line in settings_changed(cfg):  # what is in effect beyond the reference, before hours of training
            typer.echo(line)
        run_folds(
            cfg, stamp, folds, emotions, models=chosen_models(model), resume=resume, overwrite=overwrite,
            debug=debug, executor=executor, ray_address=ray_address, max_retries=max_retries,
        )  # fmt: skip


def chosen_models(given: list[str] | None) -> list[str]:
    """``--model`` values in the order given, ``all`` expanded, each once; TAGF alone when none is given."""
    from tagf_core.training.run import MODELS

    names: list[str] = []
    for name in given or ["tagf"]:
        if name != "all" and name not in MODELS:
            raise TagfError(f"--model {name!r} is not one of {', '.join(MODELS)}, all")
        names += list(MODELS) if name == "all" else [name]
    return list(dict.fromkeys(names))


def resume(
    stamp: Annotated[str, typer.Option("--stamp", help="The stamp of the run to continue.")],
    fold: Fold = 0,
    emotion: Emotion = "valence",
    model: Model = "tagf",
    output_root: OutputRoot = None,
    max_epochs: Annotated[
        int | None, typer.Option("--max-epochs", help="New epoch limit (may extend a finished run).")
    ] = None,
) -> None:
    """Continue a run from its last checkpoint, in the same MLflow run, with the configuration it was started with."""
    from tagf_core.training.run import RunSpec, saved_config

    with user_errors():
        root = load_config(overrides={"train": {"output_root": output_root}}).train.output_root
        cfg = saved_config(root, RunSpec(stamp, fold, emotion, model), max_epochs=max_epochs)
        run_folds(cfg, stamp, [fold], [emotion], models=[model], resume=True, overwrite=False, debug=False)
