"""`tagf synth`: write a small synthetic dataset in the official Aff-Wild2 VA release layout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tagf_cli.errors import user_errors


def synth(
    out: Annotated[Path, typer.Argument(help="Folder to create; it must not exist or be empty.")],
    trials: Annotated[
        int, typer.Option("--trials", "-n", help="Number of trials (≥ 6 gives train, validate and test).")
    ] = 8,
    seconds: Annotated[float, typer.Option("--seconds", help="Length of each video in seconds.")] = 12.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed writes the same bytes.")] = 0,
) -> None:
    """Write synthetic trials (faces, voices, valence–arousal labels) in the Aff-Wild2 layout."""
    from tagf_synth import generate_dataset

    with user_errors():
        report = generate_dataset(out, trials=trials, seconds=seconds, seed=seed)
    typer.echo(
        f"wrote {report.files} files to {report.out}: {len(report.train)} train, "
        f"{len(report.validate)} validate, {len(report.test)} test trials"
    )
