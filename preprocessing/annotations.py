"""Aff-Wild2 valence–arousal annotation files (ref §2.1).

The file is ``valence,arousal`` followed by one ``v,a`` line per video frame, values in [−1, 1];
``-5,-5`` marks a frame that was not annotated. The reference drops those rows, and so do we: the
trial's length T is the number of kept rows, and ``kept_frames`` remembers which video frames they
are so faces and log-mel patches can be taken from the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tagf_core.errors import TagfError

HEADER = ("valence", "arousal")
UNANNOTATED = -5.0  # ref §2.1: the reference drops rows summing to −10, i.e. (−5, −5)


@dataclass(frozen=True)
class Annotation:
    """A parsed annotation file."""

    path: Path
    values: npt.NDArray[np.float32]
    """float32 N×2 (valence, arousal), one row per frame line of the file, (−5, −5) rows included."""
    kept_frames: npt.NDArray[np.int64]
    """int64 (T,): 0-based frame indices of the annotated rows, i.e. the rows that are not (−5, −5)."""

    @property
    def length(self) -> int:
        """T, the number of kept (annotated) frames."""
        return int(self.kept_frames.size)

    @property
    def kept_values(self) -> npt.NDArray[np.float32]:
        """float32 T×2: the labels of the kept frames, what VA_continuous_label.npy holds."""
        return self.values[self.kept_frames]


def read_annotation(path: Path) -> Annotation:
    """Parse an Aff-Wild2 VA annotation file.

    Raises:
        TagfError: one line naming the file (and line number) when the file is unreadable, the header
            is not ``valence,arousal``, a line is not two numbers, a value lies outside [−1, 1] and is
            not −5, only one of the two values is −5, or no frame is annotated.
    """
    path = Path(path)
    try:
        # utf-8-sig strips a byte-order mark that Windows editors put in front of the header
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise TagfError(f"{path}: cannot read annotation file ({e.strerror or e})") from e
    except UnicodeDecodeError as e:
        raise TagfError(f"{path}: annotation file is not UTF-8 text ({e.reason} at byte {e.start})") from e

    lines = text.splitlines()  # handles \n, \r\n and a missing final newline alike
    while lines and not lines[-1].strip():
        lines.pop()  # trailing blank lines are harmless; a blank line mid-file is not (it would shift frames)
    if not lines:
        raise TagfError(f"{path}: annotation file is empty (expected the header 'valence,arousal')")
    header = tuple(part.strip().lower() for part in lines[0].split(","))
    if header != HEADER:
        raise TagfError(f"{path}:1: header is {lines[0].strip()!r}, expected 'valence,arousal'")

    if len(lines) == 1:
        raise TagfError(f"{path}: annotation file has a header but no frame lines")
    values = np.empty((len(lines) - 1, 2), dtype=np.float64)
    for row, line in enumerate(lines[1:]):
        values[row] = _parse_line(path, row + 2, line)

    unannotated = values == UNANNOTATED  # N×2
    half = unannotated[:, 0] != unannotated[:, 1]
    if half.any():
        row = int(np.flatnonzero(half)[0])
        raise TagfError(
            f"{path}:{row + 2}: only one of valence/arousal is -5 ({lines[row + 1].strip()!r}); "
            "-5 must mark both values of an unannotated frame"
        )
    kept = ~unannotated[:, 0]
    if not kept.any():
        raise TagfError(f"{path}: no annotated frame (all {len(values)} frame lines are -5,-5)")
    return Annotation(path=path, values=values.astype(np.float32), kept_frames=np.flatnonzero(kept).astype(np.int64))


def _parse_line(path: Path, line_no: int, line: str) -> tuple[float, float]:
    parts = line.split(",")
    if len(parts) != 2:
        raise TagfError(f"{path}:{line_no}: expected two comma-separated values, got {line.strip()!r}")
    try:
        valence, arousal = float(parts[0]), float(parts[1])
    except ValueError as e:
        raise TagfError(f"{path}:{line_no}: not two numbers: {line.strip()!r}") from e
    for value in (valence, arousal):
        # written so that NaN fails too
        if value != UNANNOTATED and not (-1.0 <= value <= 1.0):
            raise TagfError(f"{path}:{line_no}: value {value!r} is outside [-1, 1] (and not the -5 'unannotated' mark)")
    return valence, arousal
