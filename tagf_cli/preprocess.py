"""`tagf preprocess`: turn an Aff-Wild2 release (or `tagf synth` output) into training arrays."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from tagf_cli.errors import user_errors
from tagf_cli.options import ConfigFile, SetOverrides, config_help, with_set_overrides
from tagf_cli.progress import LazyProgress
from tagf_core.config import load_config
from tagf_core.errors import TagfError

log = logging.getLogger("tagf")

DataRoot = Annotated[
    Path | None,
    typer.Option("--data-root", help="Aff-Wild2 release root: annotations, cropped_aligned/ and videos (any depth)."),
]
Out = Annotated[Path | None, typer.Option("--out", help=config_help("data.processed_root", "Output folder. "))]
Workers = Annotated[int | None, typer.Option("--workers", help=config_help("preprocess.workers"))]
ImportReference = Annotated[
    Path | None,
    typer.Option(
        "--import-reference",
        help="Convert a dataset preprocessed by the reference code (compacted_48/ + dataset_info.pkl) instead.",
    ),
]


def preprocess(
    data_root: DataRoot = None,
    out: Out = None,
    workers: Workers = None,
    import_reference: ImportReference = None,
    config_file: ConfigFile = None,
    settings: SetOverrides = None,
) -> None:
    """Decode labels, faces and audio into per-trial arrays; a re-run skips finished trials."""
    from preprocessing import import_reference_dataset, preprocess_release

    with user_errors():
        flags: dict[str, dict[str, Any]] = {"data": {"processed_root": out}, "preprocess": {"workers": workers}}
        cfg = load_config(config_file, with_set_overrides(settings, flags))
        if (data_root is None) == (import_reference is None):
            raise TagfError("give exactly one of --data-root (a raw release) or --import-reference (reference output)")
        if import_reference is not None:
            run, source = import_reference_dataset, import_reference
        else:
            run, source = preprocess_release, data_root
        try:
            with LazyProgress("preprocessing trials") as bar:
                report = run(
                    source,
                    cfg.data.processed_root,
                    workers=cfg.preprocess.workers,
                    on_start=bar.start,
                    on_trial=bar.advance,
                )
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the workers are stopped, published trials stay
            typer.echo(
                f"error: interrupted; the trials finished so far are kept in {cfg.data.processed_root}: "
                "run the same command again to continue",
                err=True,
            )
            raise typer.Exit(130) from None
    for outcome in report.outcomes:
        for warning in outcome.warnings:
            log.warning("%s: %s", outcome.trial, warning)
    for outcome in report.failed:
        typer.echo(f"failed: {outcome.message}", err=True)
        if outcome.detail:
            log.debug("%s", outcome.detail)
    counts = f"{len(report.done)} trials done, {len(report.skipped)} skipped (up to date), {len(report.failed)} failed"
    if report.manifest_problem:
        typer.echo(counts)
        typer.echo(f"error: {report.manifest_problem}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{counts}; manifest: {report.manifest}")
    if report.failed:
        raise typer.Exit(1)
