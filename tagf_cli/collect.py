"""`tagf collect`: the table of a stamp's runs, summary files, the ABAW submission, logged to the parent run;
several stamps side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tagf_cli.errors import user_errors
from tagf_cli.options import Experiment, OutputRoot
from tagf_core.config import load_config
from tagf_core.training.run import ModelName


def collect(
    stamps: Annotated[
        list[str] | None,
        typer.Option(
            "--stamp",
            help="The experiment's name: its runs are <output-root>/<stamp>/. Give it more than once to compare "
            "stamps: one row each (mean ± std per emotion, P), written to <output-root>/comparison.md and "
            "comparison.csv; no submission then. Default: tagf.",
        ),
    ] = None,
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
    beside each baseline (models.csv, models.md); with several --stamp, the stamps side by side."""
    from tagf_cli.tables import render_model_table, render_stamp_table, render_table
    from tagf_core.errors import TagfError
    from tagf_core.launch.cross_validation import collect_stamp
    from tagf_core.results.submission import write_submission
    from tagf_core.results.summary import write_stamp_comparison
    from tagf_core.tracking.mlflow_tracker import TrackingTarget

    stamps = list(dict.fromkeys(stamps or ["tagf"]))
    with user_errors():
        if len(stamps) > 1 and (out or sample_file):
            raise TagfError("--out and --sample-file make one stamp's submission: give a single --stamp with them")
        cfg = load_config(
            overrides={"tracking": {"experiment_name": experiment}, "train": {"output_root": output_root}}
        )
        session = TrackingTarget.of(cfg.tracking).open()
        session.check_reachable()  # before any file is written
        root = Path(cfg.train.output_root)
        collected = [collect_stamp(session, root, stamp, model) for stamp in stamps]
        written: tuple[Path, ...]
        if len(stamps) > 1:
            written = write_stamp_comparison([runs for runs, _ in collected], root)
        else:
            (runs, cv), stamp = collected[0], stamps[0]
            written = cv.written
            submission = write_submission(runs, out or root / stamp / "submission.txt", sample_file)
            session.parent_tracker(session.parent_run(stamp)).log_artifact(submission, "collect")
    if len(stamps) > 1:
        Console().print(render_stamp_table([runs for runs, _ in collected]))
        typer.echo(f"comparison: {', '.join(str(p) for p in written)}")
        return
    Console().print(render_table(runs))
    if len(cv.collections) > 1:
        Console().print(render_model_table(cv.collections))
    typer.echo(f"summary: {', '.join(str(p) for p in written)}; submission: {submission}")
