"""Put a finished trial into OUT atomically, and say what happened to it.

Raw preprocessing and the reference import both compute a trial's arrays in memory, then call
``publish_trial``: the arrays go to a private folder under ``OUT/.partial/`` that is renamed to
``OUT/<trial>`` only when complete, so a killed run never leaves half a trial.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tagf_core.atomic import default_mode
from tagf_core.data.layout import TrialRecord, check_trial_arrays, read_trial_record, write_trial_record
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
    """Write a trial's arrays and record to a private folder, then rename it to ``out/<trial>``.

    An older copy of the trial is moved aside first and deleted last; a kill in between leaves the
    trial absent (redone by the next run), never half-written.
    """
    partial = out / PARTIAL_FOLDER
    partial.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{record.trial}.", dir=partial))
    os.chmod(staging, default_mode(folder=True))
    try:
        for name, array in arrays.items():
            np.save(staging / name, array, allow_pickle=False)
        write_trial_record(staging, record)
        final = out / record.trial
        stale = None
        if final.exists():
            stale = Path(tempfile.mkdtemp(prefix=f"{record.trial}.old.", dir=partial))
            os.replace(final, stale / "trial")
        os.replace(staging, final)
        if stale is not None:
            shutil.rmtree(stale, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def failure(trial: str, error: TagfError | OSError) -> TrialOutcome:
    """A failed outcome whose message is one line naming the file and the problem."""
    if isinstance(error, OSError):
        message = f"{error.filename or trial}: {error.strerror or error}"
    else:
        message = " ".join(str(error).split())
    return TrialOutcome(trial, "failed", message=f"{trial}: {message}")
