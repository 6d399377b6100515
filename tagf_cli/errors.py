"""Turn expected failures into one line on stderr and exit code 1; anything else keeps its traceback.

Two kinds of expected failure reach the user: a TagfError from tagf_core (``user_errors``), and a usage
error found by Typer while it reads the command line (``OneLineErrorGroup``, the app's command group).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer._click.exceptions import BadParameter, ClickException, MissingParameter, NoArgsIsHelpError, NoSuchOption
from typer.core import TyperGroup

from tagf_core.errors import TagfError

log = logging.getLogger("tagf")


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def fail(line: str, cause: BaseException) -> typer.Exit:
    """Print ``error: <line>`` on stderr (the cause only with --verbose); the caller raises the returned Exit."""
    log.debug("cause", exc_info=cause)
    typer.echo(f"error: {line}", err=True)
    return typer.Exit(1)


@contextmanager
def user_errors() -> Iterator[None]:
    """Show a TagfError as ``error: <message>`` (the cause only with --verbose) and exit 1."""
    try:
        yield
    except TagfError as e:
        raise fail(one_line(e), e) from None


class OneLineErrorGroup(TyperGroup):
    """The ``tagf`` group: a usage error of the group or of any command is one ``error:`` line and exit 1.

    Typer would print the usage and a boxed message and exit 2. The group parses its own arguments in
    ``make_context`` and each command's (resolve, parse, run) inside ``invoke``, so these two cover all.
    ``tagf`` alone still prints the help (NoArgsIsHelpError), and ``--help`` still exits 0.
    """

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with usage_errors():
            return super().invoke(ctx)


@contextmanager
def usage_errors() -> Iterator[None]:
    try:
        yield
    except NoArgsIsHelpError:
        raise
    except ClickException as e:
        raise fail(usage_error_line(e), e) from None


def usage_error_line(error: ClickException) -> str:
    """``--fold 'abc': input should be a valid integer``, ``--bogus: no such option of tagf train``, …"""
    if isinstance(error, BadParameter) and not isinstance(error, MissingParameter) and error.param is not None:
        param = error.param
        name = max(param.opts, key=len) if param.opts else str(param.name)  # --trials of -n/--trials
        value, problem = rejected_value(error)
        shown = name if value is None or repr(value) in problem else f"{name} {value!r}"
        return f"{shown}: {problem}"
    ctx = getattr(error, "ctx", None)  # a UsageError's; other ClickExceptions have none
    command = ctx.command_path if ctx is not None else None
    if isinstance(error, NoSuchOption):
        hint = f" (did you mean {', '.join(sorted(error.possibilities))}?)" if error.possibilities else ""
        return f"{error.option_name}: no such option of {command or 'tagf'}{hint}"
    problem = clause(error.format_message())
    return f"{command}: {problem}" if command else problem


def rejected_value(error: BadParameter) -> tuple[object | None, str]:
    """The value Typer refused and why, taken from the pydantic ValidationError it raised from, if any."""
    from pydantic import ValidationError

    cause = error.__cause__
    if isinstance(cause, ValidationError) and cause.errors():
        first = cause.errors()[0]
        reason = first.get("ctx", {}).get("error") if first["type"] == "value_error" else None
        return first["input"], clause(str(reason or first["msg"]))
    return None, clause(error.message)


def clause(message: str) -> str:
    """Click's sentence as the clause after ``error: x:`` (one line, no final full stop, lower-case start)."""
    text = " ".join(message.split()).rstrip(".")
    return text[:1].lower() + text[1:] if text[1:2].islower() else text
