"""Put a finished trial into OUT atomically, and say what happened to it.

Raw preprocessing and the reference import both compute a trial's arrays in memory, then call
``publish_trial``: the arrays go to a private folder under ``OUT/.partial/`` that is renamed to
``OUT/<trial>`` only when complete, so a killed run never leaves half a trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tagf_core.atomic import atomic_folder
from tagf_core.data.layout import TrialRecord, check_trial_arrays, read_trial_record, save_array, write_trial_record
from tagf_core.errors import TagfError

PARTIAL_FOLDER = ".partial"


@dataclass(frozen=True)
class TrialOutcome:
    trial: str
    status: Literal["done", "skipped", "failed"]
    record: TrialRecord | None = None
    message: str = ""
    """For a failure: one line ``<trial>: <file>: <problem>``."""
    warnings: tuple[str, ...] = field(default_factory=tuple)
    detail: str = ""
    """For an internal error: the traceback, shown with ``tagf -v``."""


def up_to_date_record(out: Path, trial: str, digest: str) -> TrialRecord | None:
    """The trial's record if ``out/<trial>`` was made from inputs with this digest and is complete, else None."""
    trial_dir = out / trial
    if not trial_dir.is_dir():
        return None
    try:
        record = read_trial_record(trial_dir)
        check_trial_arrays(out, record)
    except TagfError:
        return None
    return record if record.input_digest == digest else None


def publish_trial(out: Path, record: TrialRecord, arrays: dict[str, np.ndarray]) -> None:
    """Write a trial's arrays and record to a private folder under ``out/.partial``, then rename it to
    ``out/<trial>``. An older copy of the trial is moved aside first and deleted last; a kill in between
    leaves the trial absent (redone by the next run), never half-written."""
    with atomic_folder(out / record.trial, staging_parent=out / PARTIAL_FOLDER) as staging:
        for name, array in arrays.items():
            save_array(staging / name, array)
        write_trial_record(staging, record)


def failure(trial: str, error: TagfError | OSError) -> TrialOutcome:
    """A failed outcome whose message is one line naming the file and the problem."""
    if isinstance(error, OSError):
        message = f"{error.filename or trial}: {error.strerror or error}"
    else:
        message = " ".join(str(error).split())
    return TrialOutcome(trial, "failed", message=f"{trial}: {message}")
