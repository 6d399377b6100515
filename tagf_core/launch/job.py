"""One fold × emotion job: everything a process on any machine needs to train (or resume) one run, and the
job itself, ``run_fold_job``. Both executors of ``jobs.py`` (here in sequence, ``ray_executor.py`` as tasks) run it.
"""

from __future__ import annotations

import logging
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tagf_core.config import TagfConfig
from tagf_core.errors import TagfError
from tagf_core.locks import lock_holder
from tagf_core.tracking.mlflow_tracker import MlflowSession, TrackingTarget, child_run_name
from tagf_core.tracking.tracker import RunStatus
from tagf_core.training.run import RunPaths, RunResult, RunSpec, read_run_record

if TYPE_CHECKING:
    from tagf_core.training.setup import RunData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoldJob:
    """One fold × emotion run, with everything a process on another machine needs to run it."""

    cfg: TagfConfig
    spec: RunSpec
    data: RunData
    """The manifest, read once by the launch (small: one record per trial)."""
    tracking: TrackingTarget
    parent_run_id: str
    tags: dict[str, str]
    resume: bool
    overwrite: bool
    debug: bool
    launch: str
    """Id of the command that submitted the job: a retried attempt that finds it in run.json resumes."""


@dataclass(frozen=True)
class JobEvent:
    """What a running job reports to the command that waits for it."""

    name: str
    kind: Literal["started", "epoch", "finished", "failed"]
    text: str
    row: dict[str, float] = field(default_factory=dict)


def new_launch() -> str:
    return uuid.uuid4().hex


def absolute_config(cfg: TagfConfig) -> TagfConfig:
    """The config with every path absolute, so a worker started in another folder finds the same files."""

    def absolute(path: Path | None) -> Path | None:
        return None if path is None else Path(path).expanduser().resolve()

    return cfg.model_copy(
        update={
            "data": cfg.data.model_copy(
                update={
                    "processed_root": absolute(cfg.data.processed_root),
                    "embeddings_root": absolute(cfg.data.embeddings_root),
                }
            ),
            "train": cfg.train.model_copy(
                update={"output_root": absolute(cfg.train.output_root), "weights_dir": absolute(cfg.train.weights_dir)}
            ),
            "tracking": cfg.tracking.model_copy(update={"artifact_root": absolute(cfg.tracking.artifact_root)}),
        }
    )


def run_fold_job(job: FoldJob, callbacks: Any = None) -> RunResult:
    """Train (or resume) the job's run where this process runs; a retry of the same launch resumes it (jobs.py)."""
    from tagf_core.training.loop import train_run

    paths = RunPaths.of(job.cfg.train.output_root, job.spec)
    if not paths.folder.parent.is_dir():
        raise TagfError(
            f"{paths.folder.parent}: not visible on {socket.gethostname()}; the output root must be shared "
            "storage mounted at the same path on every machine"
        )
    record = read_run_record(paths)  # {} when the run never started
    launch = str(record.get("launch", "")) if record else None
    retry = launch == job.launch
    session = job.tracking.open()

    opened = []

    def open_tracker(run_id: str | None) -> Any:
        name = child_run_name(job.spec.stamp, job.spec.name)  # unique across stamps; the folder is spec.name
        tracker = session.child(job.parent_run_id, name, job.tags, run_id=run_id)
        opened.append(tracker)
        return tracker

    try:
        return train_run(
            job.cfg,
            job.spec,
            open_tracker,
            resume=retry or (job.resume and launch is not None),  # --resume starts the runs that never started
            overwrite=job.overwrite and not retry,
            debug=job.debug,
            callbacks=callbacks,
            launch=job.launch,
            data=job.data,
            run_record=record,
        )
    except BaseException as e:
        # it ended before its MLflow run existed (bad data, weights, ...): the parent says so; not when it was
        # refused because another live process holds the run (that one's child tells how the run goes)
        if not opened and lock_holder(paths.lock) is None:
            status: RunStatus = "KILLED" if isinstance(e, (KeyboardInterrupt, SystemExit)) else "FAILED"
            _record_quietly(session, job.parent_run_id, job.spec.name, status)
        raise


def _record_quietly(session: MlflowSession, parent_id: str, name: str, status: RunStatus) -> None:
    """``record_failed_start``, never hiding the error that ended the run."""
    try:
        session.record_failed_start(parent_id, name, status)
    except Exception:
        log.warning("could not record on parent run %s that %s ended %s", parent_id, name, status, exc_info=True)
