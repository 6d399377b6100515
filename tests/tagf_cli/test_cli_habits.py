"""CLI habits a user expects: --version, shell completion, help defaults, --set, --print-config, echoes, warnings."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tagf_cli.app import app

runner = CliRunner()


def test_version_prints_the_installed_version_and_exits_0() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"tagf {importlib.metadata.version('tagf')}"


def test_shell_completion_is_offered() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200", "TERM": "dumb"})
    assert result.exit_code == 0
    assert "--install-completion" in result.output and "--show-completion" in result.output
    shown = runner.invoke(app, ["--show-completion", "bash"], env={"SHELL": "/bin/bash"})
    assert shown.exit_code == 0, shown.output
    assert "_TAGF_COMPLETE" in shown.output


LIBRARY_WARNINGS = """
import logging, warnings
from tagf_cli.app import configure_logging
configure_logging(verbose={verbose}, version=False)
import mlflow  # as a command does: imported after the CLI set up logging
logging.getLogger("mlflow.pytorch").warning(
    "Saving pytorch model by Pickle or CloudPickle format requires exercising caution because these formats "
    "rely on Python's object serialization mechanism, which can execute arbitrary code during deserialization."
)
logging.getLogger("mlflow.store").warning("a store warning")
warnings.warn("a library's future warning", FutureWarning)
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_mlflow_and_python_warnings_go_through_the_cli_logging(verbose: bool) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LIBRARY_WARNINGS.format(verbose=verbose)],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200", "TERM": "dumb"}, check=True,
    )  # fmt: skip
    assert done.stderr.strip() == ""  # before: MLflow's own handler and Python's warnings wrote here
    lines = [" ".join(line.split()) for line in done.stdout.splitlines() if line.strip()]
    assert "WARNING a store warning" in lines
    assert "WARNING <string>:11: FutureWarning: a library's future warning" in lines
    assert "exercising caution" not in done.stdout
    assert ("DEBUG mlflow: model logged in pickle format (its safety warning)" in lines) == verbose
