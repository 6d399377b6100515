"""Bad input on the command line ends with one ``error: <value>: <problem>`` line and exit code 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def test_a_video_name_too_long_for_the_outputs_fails_before_decoding(tmp_path: Path) -> None:
    """A legal 244-byte name gives a 260-byte ``<stem>_valence_arousal.csv``: one line, before any work (the
    file is no video at all, so decoding it would fail otherwise)."""
    video = tmp_path / ("v" * 240 + ".mp4")
    video.write_bytes(b"not a video")
    result = runner.invoke(
        app, ["predict", "--video", str(video), "--out", str(tmp_path), "--output-root", str(tmp_path)]
    )
    csv = tmp_path / f"{video.stem}_valence_arousal.csv"
    assert result.exit_code == 1
    assert (
        result.output
        == f"error: {csv}: file name too long (260 bytes; this file system allows 255): rename the video\n"
    )


def test_preprocessing_onto_a_full_disk_says_no_space_for_each_trial_and_for_the_manifest(
    synth_release: Any, tmp_path: Path, mounts: Any
) -> None:
    full = mounts.tmpfs(tmp_path / "full", 256 * 1024)
    out = full / "processed"
    result = runner.invoke(app, ["preprocess", "--data-root", str(synth_release.out), "--out", str(out)])
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("failed: ")]
    assert failed and all(line.endswith(": No space left on device") for line in failed), result.output
    assert all(f"{out}/.partial/" in line for line in failed)  # each names the file it could not write

    mounts.fill(full, leave_bytes=0)  # not even the manifest fits: the trials' outcomes are still reported
    result = runner.invoke(app, ["preprocess", "--data-root", str(synth_release.out), "--out", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("failed: ")]) >= len(failed)
    assert f"error: {out}/manifest.json: cannot write the manifest (No space left on device)" in result.output
