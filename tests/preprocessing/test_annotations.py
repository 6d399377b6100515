"""Aff-Wild2 VA annotation files: kept frames, and one clear error line per kind of bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from preprocessing.annotations import read_annotation
from tagf_core.errors import TagfError


def write(tmp_path: Path, content: str | bytes, name: str = "video.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_minus_five_block_mid_file_is_skipped_in_kept_frames(tmp_path: Path) -> None:
    path = write(tmp_path, "valence,arousal\n0.1,0.2\n-0.3,0.4\n-5,-5\n-5.0,-5.0\n0.5,-0.6\n1,-1\n")
    annotation = read_annotation(path)
    assert annotation.kept_frames.tolist() == [0, 1, 4, 5]
    assert annotation.kept_frames.dtype == np.int64
    assert annotation.values.dtype == np.float32
    assert annotation.values.shape == (6, 2)  # every frame line, so frame k is row k
    np.testing.assert_array_equal(annotation.values[3], [-5, -5])
    assert annotation.kept_values.dtype == np.float32
    np.testing.assert_array_equal(
        annotation.kept_values, np.array([[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6], [1, -1]], dtype=np.float32)
    )
    assert annotation.length == 4
    assert annotation.path == path


def test_bom_crlf_trailing_whitespace_and_blank_final_lines_are_tolerated(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbfvalence,arousal  \r\n0.25,-0.5\r\n-5,-5\r\n0.0, 0.75 \r\n\r\n")
    annotation = read_annotation(path)
    assert annotation.kept_frames.tolist() == [0, 2]
    np.testing.assert_array_equal(annotation.kept_values, np.array([[0.25, -0.5], [0.0, 0.75]], dtype=np.float32))


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("0.1,0.2\n0.3,0.4\n", ":1: header is '0.1,0.2', expected 'valence,arousal'"),
        ("arousal,valence\n0.1,0.2\n", ":1: header is 'arousal,valence'"),
        ("valence,arousal\n", "header but no frame lines"),
        ("valence,arousal\n0.1,0.2\nabc,0.3\n", ":3: not two numbers: 'abc,0.3'"),
        ("valence,arousal\n0.1,0.2\n0.3\n", ":3: expected two comma-separated values, got '0.3'"),
        ("valence,arousal\n0.1,0.2,0.3\n", ":2: expected two comma-separated values"),
        ("valence,arousal\n0.1,0.2\n\n0.3,0.4\n", ":3: expected two comma-separated values, got ''"),
        ("valence,arousal\n0.1,0.2\n0.3,1.5\n", ":3: value 1.5 is outside [-1, 1]"),
        ("valence,arousal\n-1.01,0.2\n", ":2: value -1.01 is outside [-1, 1]"),
        ("valence,arousal\nnan,0.2\n", ":2: value nan is outside [-1, 1]"),
        ("valence,arousal\n0.1,0.2\n-5,0.3\n", ":3: only one of valence/arousal is -5"),
        ("valence,arousal\n-5,-5\n-5,-5\n", "no annotated frame"),
    ],
)
def test_bad_files_raise_one_line_naming_file_and_line(tmp_path: Path, content: str, fragment: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(TagfError) as error:
        read_annotation(path)
    message = str(error.value)
    assert message.startswith(str(path))
    assert fragment in message
    assert "\n" not in message


def test_missing_file_and_non_utf8_file(tmp_path: Path) -> None:
    with pytest.raises(TagfError, match="cannot read annotation file"):
        read_annotation(tmp_path / "absent.txt")
    with pytest.raises(TagfError, match="not UTF-8"):
        read_annotation(write(tmp_path, b"valence,arousal\n0.1,\xff\n"))
