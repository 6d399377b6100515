"""CLI habits a user expects: --version, shell completion, help defaults, --set, --print-config, echoes, warnings."""

from __future__ import annotations

import importlib.metadata

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
