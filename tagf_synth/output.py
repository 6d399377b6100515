"""Putting a finished dataset at OUT atomically: a killed run never leaves half a dataset there.

The dataset is written into a hidden temporary sibling of OUT (same file system, so ``rename`` is atomic)
and renamed into place at the end. A previous synth output at OUT is moved aside first and deleted after
the new one is in place; any other non-empty folder is refused, so a typo cannot delete real data.
A run killed mid-way leaves only the hidden ``.OUT.*.partial`` sibling, which is safe to delete.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tagf_core.atomic import atomic_folder
from tagf_core.errors import TagfError
from tagf_synth.description import synth_record_problem
from tagf_synth.layout import DESCRIPTION_FILE


def check_destination(out: Path) -> None:
    """Raise TagfError if writing to ``out`` would overwrite something that is not a previous synth output."""
    if out.is_symlink():
        # Renaming onto a link would replace the link, not fill the folder it points to.
        raise TagfError(f"{out}: is a symbolic link; give the real folder path for the synthetic dataset")
    if out.exists() and not out.is_dir():
        raise TagfError(f"{out}: exists and is not a folder; give a new or empty folder for the synthetic dataset")
    if not out.is_dir() or not any(out.iterdir()):
        return
    record = out / DESCRIPTION_FILE
    if not record.exists():
        raise TagfError(
            f"{out}: folder is not empty and is not a previous `tagf synth` output (no {DESCRIPTION_FILE}); "
            "give a new or empty folder"
        )
    problem = synth_record_problem(record)
    if problem is not None:  # a file of that name, someone else's: its folder is not ours to replace either
        raise TagfError(
            f"{record}: not a tagf synth record ({problem}), so {out} is not a previous `tagf synth` output; "
            "give a new or empty folder"
        )


@contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """The folder to write the dataset into; renamed to ``out`` when the block ends without an error
    (``atomic_folder``), after checking ``out`` again: something may have appeared there while generating."""
    entered = False
    try:
        with atomic_folder(out) as staging:
            entered = True
            yield staging
            check_destination(out)
    except OSError as e:
        if entered:
            raise
        raise TagfError(f"{out}: cannot create a folder next to it to write into ({e})") from e
