"""A stamp's MLflow statuses made true again from its run folders: a child run left RUNNING by a process that died
without a word (SIGKILL, the OOM killer, a lost machine) is marked KILLED, and the parent is settled from its
children (``MlflowSession.settle_parent``). ``tagf train``/``tagf resume`` do it before and after their runs,
``tagf collect`` before it reads the stamp.

A child is judged only where the run folder that owns it is here: ``<stamp folder>/<run folder name>/run.json``
(the part of the child's run name after ``<stamp>/``) names its MLflow run id. It is dead when nobody holds the
run's lock (``RunPaths.lock``, held by the training process for the run's whole life and released by the kernel
when that process dies). The lock is taken while
marking, so a ``tagf resume`` starting at that moment cannot be marked KILLED by mistake. A child trained under
another output root, or whose folder was overwritten by a newer run, is left as it is.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from tagf_core.errors import TagfError
from tagf_core.locks import LockTaken, exclusive_lock
from tagf_core.tracking.mlflow_tracker import run_folder_name
from tagf_core.tracking.tracker import ParentStatus
from tagf_core.training.run import RunPaths, RunSpec, read_run_record

if TYPE_CHECKING:
    from tagf_core.tracking.mlflow_tracker import MlflowSession

log = logging.getLogger(__name__)


def settle_stamp(session: MlflowSession, stamp: str, stamp_folder: Path) -> ParentStatus | None:
    """Mark the stamp's dead RUNNING children KILLED, then settle its parent; returns the parent's status.

    Nothing is done (None) when the store has no parent run for ``stamp``.
    """
    parent_id = session.find_parent_run(stamp)
    if parent_id is None:
        return None
    for name in mark_dead_runs_killed(session, parent_id, Path(stamp_folder)):
        log.info("MLflow run of %s/%s was left RUNNING by a process that died: marked KILLED", stamp, name)
    return session.settle_parent(parent_id)


def mark_dead_runs_killed(session: MlflowSession, parent_id: str, stamp_folder: Path) -> list[str]:
    """Mark KILLED every RUNNING child of ``parent_id`` whose run folder here is held by no live process.

    Returns the run folder names of the runs marked.
    """
    marked = []
    for child in session.children(parent_id):
        folder_name = run_folder_name(child.info.run_name or "")
        if child.info.status != "RUNNING" or RunSpec.parse_name(folder_name) is None:
            continue
        paths = RunPaths(stamp_folder / folder_name)
        try:
            owner = read_run_record(paths).get("run_id")
        except TagfError:
            continue  # an unreadable run.json: cannot tell whose run the folder holds
        if owner != child.info.run_id:
            continue
        try:
            with exclusive_lock(paths.lock, f"tagf marking the dead run {folder_name} KILLED"):
                if session.client.get_run(child.info.run_id).info.status == "RUNNING":
                    session.client.set_terminated(child.info.run_id, "KILLED")
                    marked.append(folder_name)
        except LockTaken:
            continue  # alive: a process trains it
        except TagfError as e:  # the lock file cannot be made (a read-only output root): cannot tell
            log.warning("cannot tell whether %s is alive: %s", paths.folder, e)
    return marked
