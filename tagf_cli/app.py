"""The `tagf` Typer app: a table of subcommands, each a thin function defined in its own module."""

from __future__ import annotations

import importlib.metadata
import logging

import typer
from rich.logging import RichHandler

from tagf_cli import collect, predict, preprocess, synth, train
from tagf_cli.errors import OneLineErrorGroup

app = typer.Typer(
    name="tagf",
    cls=OneLineErrorGroup,  # usage errors as one `error:` line and exit 1, as every other error
    help="TAGF (Time-aware Gated Fusion) valence–arousal estimation on Aff-Wild2, experiment-tracked.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion
    pretty_exceptions_enable=False,
)


def print_version(given: bool) -> None:
    if given:
        typer.echo(f"tagf {importlib.metadata.version('tagf')}")
        raise typer.Exit()


@app.callback()
def configure_logging(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug messages and the cause of errors."),
    version: bool = typer.Option(
        False, "--version", callback=print_version, is_eager=True, help="Show the installed version and exit."
    ),
) -> None:
    """TAGF (Time-aware Gated Fusion) valence–arousal estimation on Aff-Wild2, experiment-tracked."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(show_time=False, show_path=False, markup=False)],
        force=True,
    )


app.command("synth")(synth.synth)
app.command("preprocess")(preprocess.preprocess)
app.command("train")(train.train)
app.command("resume")(train.resume)
app.command("predict")(predict.predict)
app.command("collect")(collect.collect)


def main() -> None:
    app()
