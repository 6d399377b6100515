"""Bad input on the command line ends with one ``error: <value>: <problem>`` line and exit code 1."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tagf_cli.app import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["train", "--emotion", "happy"], "error: --emotion: 'happy' is not one of 'valence', 'arousal', 'both'"),
        (
            ["resume", "--stamp", "s", "--emotion", "both"],
            "error: --emotion: 'both' is not one of 'valence', 'arousal'",
        ),
        (
            ["train", "--fold", "abc"],
            "error: --fold 'abc': input should be a valid integer, unable to parse string as an integer",
        ),
        (["train", "--bogus", "1"], "error: --bogus: no such option of tagf train"),
        (["--bogus"], "error: --bogus: no such option of tagf (did you mean --verbose?)"),
        (["trian"], "error: tagf: no such command 'trian'. Did you mean 'train'?"),
        (["resume"], "error: tagf resume: missing option '--stamp'"),
        (["synth"], "error: tagf synth: missing argument 'out'"),
    ],
)
def test_typer_usage_errors_are_one_line_and_exit_1(args: list[str], line: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output == line + "\n"


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["collect", "--help"]])
def test_help_still_exits_0(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    assert "Usage: tagf" in result.output


def test_tagf_alone_still_shows_the_help() -> None:
    result = runner.invoke(app, [])
    assert "Usage: tagf" in result.output and "preprocess" in result.output
