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
    """Best validation CCC per fold × emotion, mean ± std, the challenge score P, and the submission file;
    with baseline runs in the stamp, also TAGF beside each baseline (models.csv, models.md)."""
    from tagf_cli.tables import render_model_table, render_table
    from tagf_core.launch.stamp_status import settle_stamp
    from tagf_core.results.collect import collect_runs, compare_models
    from tagf_core.results.submission import write_submission
    from tagf_core.results.summary import write_model_comparison, write_summary
    from tagf_core.tracking.mlflow_tracker import TrackingTarget

    with user_errors():
        cfg = load_config(
            overrides={"tracking": {"experiment_name": experiment}, "train": {"output_root": output_root}}
        )
        session = TrackingTarget.of(cfg.tracking).open()
        session.check_reachable()  # before any file is written
        root = cfg.train.output_root
        settle_stamp(session, stamp, Path(root) / stamp)  # a killed run shows KILLED, even if none finished
        collected = collect_runs(root, stamp, model)
        models = compare_models(root, stamp)
        folder = Path(root) / stamp
        csv_path, md_path = write_summary(collected, folder)
        written = [csv_path, md_path]
        if len(models) > 1:
            written += write_model_comparison(models, folder)
        submission = write_submission(collected, out or folder / "submission.txt", sample_file)
        parent = session.parent_tracker(session.parent_run(stamp))
        for path in (*written, submission):
            parent.log_artifact(path, "collect")
    Console().print(render_table(collected))
    if len(models) > 1:
        Console().print(render_model_table(models))
    typer.echo(f"summary: {', '.join(str(p) for p in written)}; submission: {submission}")
