"""Turn expected failures into one line on stderr and exit code 1; anything else keeps its traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from tagf_core.errors import TagfError

log = logging.getLogger("tagf")


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


@contextmanager
def user_errors() -> Iterator[None]:
    """Show a TagfError as ``error: <message>`` (the cause only with --verbose) and exit 1."""
    try:
        yield
    except TagfError as e:
        log.debug("cause", exc_info=e)
        typer.echo(f"error: {one_line(e)}", err=True)
        raise typer.Exit(1) from None
