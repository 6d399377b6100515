"""`tagf collect`: the table of a stamp's runs, summary files, the ABAW submission, logged to the parent run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tagf_cli.errors import user_errors
from tagf_core.config import load_config


def collect(
    stamp: Annotated[str, typer.Option("--stamp", help="The experiment whose runs to collect.")] = "tagf",
    sample_file: Annotated[
        Path | None,
        typer.Option("--sample-file", help="Organisers' sample submission: rows and lengths follow it."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Submission file [default: <output-root>/<stamp>/submission.txt].")
    ] = None,
    output_root: Annotated[
        Path | None, typer.Option("--output-root", help="Where run folders are [default: outputs].")
    ] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", help="MLflow experiment [default: tagf].")] = None,
) -> None:
    """Best validation CCC per fold × emotion, mean ± std, the challenge score P, and the submission file."""
    from tagf_core.tracking.mlflow_tracker import MlflowSession, resolve_tracking_uri
    from tagf_core.training.collect import collect_runs, render_table, write_submission, write_summary

    with user_errors():
        cfg = load_config(
            overrides={"tracking": {"experiment_name": experiment}, "train": {"output_root": output_root}}
        )
        session = MlflowSession(
            resolve_tracking_uri(cfg.tracking.tracking_uri), cfg.tracking.experiment_name, cfg.tracking.artifact_root
        )
        session.check_reachable()  # before any file is written
        root = cfg.train.output_root
        collected = collect_runs(root, stamp)
        folder = Path(root) / stamp
        csv_path, md_path = write_summary(collected, folder)
        submission = write_submission(collected, out or folder / "submission.txt", sample_file)
        parent = session.parent_tracker(session.parent_run(stamp))
        for path in (csv_path, md_path, submission):
            parent.log_artifact(path, "collect")
    Console().print(render_table(collected))
    typer.echo(f"summary: {csv_path}, {md_path}; submission: {submission}")
