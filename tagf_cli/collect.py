"""`tagf collect`: the table of a stamp's runs, summary files, the ABAW submission, logged to the parent run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tagf_cli.errors import user_errors
from tagf_cli.options import Experiment, OutputRoot, Stamp
from tagf_core.config import load_config
from tagf_core.training.run import ModelName


def collect(
    stamp: Stamp = "tagf",
    sample_file: Annotated[
        Path | None,
        typer.Option("--sample-file", help="Organisers' sample submission: rows and lengths follow it."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Submission file (default: <output-root>/<stamp>/submission.txt).")
    ] = None,
    output_root: OutputRoot = None,
    experiment: Experiment = None,
    model: Annotated[
        ModelName, typer.Option("--model", help="Whose runs make the table and the submission: tagf or a baseline.")
    ] = "tagf",
) -> None:
    """Best validation CCC per fold × emotion, mean ± std, the challenge score P, and the submission file, also
    logged to the stamp's MLflow parent run (metrics cv/…, fold<K>/…); with baseline runs in the stamp, also TAGF
    beside each baseline (models.csv, models.md)."""
    from tagf_cli.tables import render_model_table, render_table
    from tagf_core.launch.cross_validation import collect_stamp
    from tagf_core.results.submission import write_submission
    from tagf_core.tracking.mlflow_tracker import TrackingTarget

    with user_errors():
        cfg = load_config(
            overrides={"tracking": {"experiment_name": experiment}, "train": {"output_root": output_root}}
        )
        session = TrackingTarget.of(cfg.tracking).open()
        session.check_reachable()  # before any file is written
        root = Path(cfg.train.output_root)
        collected, cv = collect_stamp(session, root, stamp, model)
        submission = write_submission(collected, out or root / stamp / "submission.txt", sample_file)
        session.parent_tracker(session.parent_run(stamp)).log_artifact(submission, "collect")
    Console().print(render_table(collected))
    if len(cv.collections) > 1:
        Console().print(render_model_table(cv.collections))
    typer.echo(f"summary: {', '.join(str(p) for p in cv.written)}; submission: {submission}")
