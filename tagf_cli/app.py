"""The `tagf` Typer app: a table of subcommands, each a thin function defined in its own module."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import sys

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
    route_library_warnings()


# MLflow logs this after every pickled model; tagf logs models pickled on purpose (the pt2 export fixes the
# window length), so it is one debug line, not three lines of advice after every run.
MLFLOW_PICKLE_WARNING = "Saving pytorch model by Pickle or CloudPickle format"


class DemoteKnownWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("mlflow") and str(record.msg).startswith(MLFLOW_PICKLE_WARNING):
            record.msg, record.args = "mlflow: model logged in pickle format (its safety warning)", ()
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def route_library_warnings() -> None:
    """Python warnings and MLflow's own log records go through the handler above, not raw stderr."""
    logging.captureWarnings(True)
    # MLflow gives its loggers their own stderr handler when it is imported (later, inside a command);
    # the variable stops that, and a MLflow already imported is undone here
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    if "mlflow" in sys.modules:
        mlflow_logger = logging.getLogger("mlflow")
        mlflow_logger.handlers.clear()
        mlflow_logger.propagate = True
    # the levels MLflow would have given: its SQL store's schema migrations stay quiet
    for name in ("alembic", "sqlalchemy.engine", "huey"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(DemoteKnownWarnings())


app.command("synth")(synth.synth)
app.command("preprocess")(preprocess.preprocess)
app.command("train")(train.train)
app.command("resume")(train.resume)
app.command("predict")(predict.predict)
app.command("collect")(collect.collect)


def main() -> None:
    app()
