"""Putting a finished dataset at OUT atomically: a killed run never leaves half a dataset there.

The dataset is written into a hidden temporary sibling of OUT (same file system, so ``rename`` is atomic)
and renamed into place at the end. A previous synth output at OUT is moved aside first and deleted after
the new one is in place; any other non-empty folder is refused, so a typo cannot delete real data.
A run killed mid-way leaves only the hidden ``.OUT.synth-*.partial`` sibling, which is safe to delete.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from tagf_core.errors import TagfError
from tagf_synth.description import is_synth_output

logger = logging.getLogger(__name__)


def check_destination(out: Path) -> None:
    """Raise TagfError if writing to ``out`` would overwrite something that is not a previous synth output."""
    if out.is_symlink():
        # Renaming onto a link would replace the link, not fill the folder it points to.
        raise TagfError(f"{out}: is a symbolic link; give the real folder path for the synthetic dataset")
    if out.exists() and not out.is_dir():
        raise TagfError(f"{out}: exists and is not a folder; give a new or empty folder for the synthetic dataset")
    if out.is_dir() and any(out.iterdir()) and not is_synth_output(out):
        raise TagfError(
            f"{out}: folder is not empty and is not a previous `tagf synth` output (no synth.json); "
            "give a new or empty folder"
        )


def make_staging_folder(out: Path) -> Path:
    """Create the hidden temporary sibling the dataset is written into."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # Not tempfile.mkdtemp: its 0700 mode would become OUT's mode; mkdir honours the umask like any folder.
        staging = out.parent / f".{out.name}.synth-{os.getpid()}-{secrets.token_hex(4)}.partial"
        staging.mkdir()
        return staging
    except OSError as e:
        raise TagfError(f"{out}: cannot create a folder next to it to write into ({e})") from e


def publish(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``, replacing an empty folder or a previous synth output there."""
    check_destination(out)  # again: something may have appeared at OUT while generating
    previous: Path | None = None
    if out.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.synth-", suffix=".old", dir=out.parent))
        os.replace(out, previous / out.name)
    try:
        os.replace(staging, out)
    except OSError:
        if previous is not None:
            os.replace(previous / out.name, out)  # put the old dataset back rather than leave nothing
        raise
    if previous is not None:
        logger.info("replaced the previous synthetic dataset at %s", out)
        shutil.rmtree(previous, ignore_errors=True)


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
