"""Many fold × emotion runs from one command: in sequence in this process, or as Ray tasks across a cluster
(``ray_executor.py``).

Both executors run the same job, ``job.run_fold_job``: open the run's child under the stamp's parent run on the
shared tracking store, then ``train_run``. Only where it runs differs.

On Ray, one task per job asks for one GPU when the cluster has GPUs (one CPU otherwise). A task whose worker
dies (killed, out of memory, its machine lost) is retried by Ray; the retry finds run.json written by the same
launch and resumes from the run's last checkpoint, in the same MLflow run, instead of starting over. A job that
fails on bad input (a ``TagfError``) is not retried: the other jobs go on and the command reports it at the end.
With frozen backbones, one task builds the embedding cache before the runs start, so twelve runs do not embed
the dataset twelve times. Every path a task touches must be shared storage mounted at the same path on every
machine; the driver makes paths absolute and each task checks that it sees the stamp folder.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tagf_core.config import TagfConfig
from tagf_core.errors import TagfError
from tagf_core.launch.cross_validation import log_cross_validation_quietly
from tagf_core.launch.job import FoldJob, JobEvent, absolute_config, new_launch, run_fold_job
from tagf_core.launch.stamp_status import settle_stamp
from tagf_core.tracking.mlflow_tracker import MlflowSession, TrackingTarget
from tagf_core.training.run import RunResult, RunSpec, run_config, stamp_folder

if TYPE_CHECKING:
    from tagf_core.launch.ray_executor import RayOptions

log = logging.getLogger(__name__)

Executor = Literal["local", "ray"]
EXECUTORS: tuple[Executor, ...] = ("local", "ray")


def launch_runs(
    cfg: TagfConfig,
    stamp: str,
    folds: Sequence[int],
    emotions: Sequence[str],
    *,
    models: Sequence[str] = ("tagf",),
    resume: bool,
    overwrite: bool,
    debug: bool,
    executor: Executor,
    progress: Callable[[str], AbstractContextManager[Any]],
    on_event: Callable[[JobEvent], None],
    ray_options: RayOptions | None = None,
) -> list[RunResult]:
    """Train every fold × emotion: the parent run once, then one job per run on the chosen executor.

    ``progress(name)`` gives each local run's TrainingCallbacks; Ray runs report through ``on_event``.
    After each run that finishes, and at the end, the stamp's parent run gets the cross-validation of the runs
    finished so far (``cross_validation.log_cross_validation``) and the stamp folder its summary files.

    Raises:
        TagfError: bad input or an unreachable tracking server (before any training work), or, after all the
            others finished, the runs that failed.
    """
    from tagf_core.launch.ray_executor import RayOptions, check_ray_address, run_on_ray
    from tagf_core.training.setup import RunData

    if executor not in EXECUTORS:
        raise TagfError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    cfg = absolute_config(cfg)
    specs = [
        RunSpec(stamp, fold, emotion, model)  # type: ignore[arg-type]
        for fold in folds
        for emotion in emotions
        for model in models
    ]
    tracking = TrackingTarget.of(cfg.tracking)
    data = RunData.read(cfg.data.processed_root)  # the one reading of the manifest for all runs
    for fold in folds:  # every fold's split is checked now, not after the runs before it trained for hours
        data.split(fold, debug=debug)
    if executor == "ray":
        check_ray_address((ray_options or RayOptions()).address or os.environ.get("RAY_ADDRESS"))
    session = tracking.open()
    session.check_reachable()
    parent = session.parent_run(stamp)
    launch, commit = new_launch(), git_commit()
    jobs = [
        FoldJob(
            run_config(cfg, spec),
            spec,
            data,
            tracking,
            parent,
            tags={
                "stamp": stamp,
                "fold": str(spec.fold),
                "emotion": spec.emotion,
                "model": spec.model,
                "backbone": run_config(cfg, spec).train.backbone,
                "git_commit": commit,
                "executor": executor,
            },
            resume=resume,
            overwrite=overwrite,
            debug=debug,
            launch=launch,
        )
        for spec in specs
    ]

    def log_cv() -> None:  # the parent run shows the cross-validation of the runs finished so far
        log_cross_validation_quietly(session, parent, cfg.train.output_root, stamp, models[0])

    def on_ray_event(event: JobEvent) -> None:
        on_event(event)
        if event.kind == "finished" and RunSpec.parse_name(event.name) is not None:
            log_cv()

    with stamp_folder(cfg.train.output_root / stamp) as folder:  # every worker checks that it sees it
        settle_stamp(session, stamp, folder)  # runs killed earlier without a word are KILLED, not RUNNING
        try:
            if executor == "local":
                return run_in_sequence(jobs, progress, after_each=log_cv)
            results, failures = run_on_ray(jobs, ray_options or RayOptions(), on_ray_event)
        finally:
            _settle_quietly(session, stamp, folder)  # a Ray worker lost for good leaves its run RUNNING
            log_cv()  # after a run that failed, too: those finished before it count
    if failures:
        listed = "; ".join(f"{name}: {message}" for name, message in failures)
        raise TagfError(
            f"{len(failures)} of {len(jobs)} runs failed ({listed}); the others are kept: rerun the failed ones "
            "(`tagf train … --resume` continues the started ones and starts the others)"
        )
    return results


def _settle_quietly(session: MlflowSession, stamp: str, folder: Path) -> None:
    """``settle_stamp`` at the end of a launch: a failure to reach the store never hides how the runs ended."""
    try:
        settle_stamp(session, stamp, folder)
    except Exception:
        log.warning("could not settle the MLflow statuses of stamp %s", stamp, exc_info=True)


def git_commit() -> str:
    """The commit of the tagf checkout that runs, for the runs' tags; ``unknown`` outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


# ---- local: one after the other, in this process -----------------------------------------------------------


def run_in_sequence(
    jobs: Sequence[FoldJob],
    progress: Callable[[str], AbstractContextManager[Any]],
    after_each: Callable[[], None] = lambda: None,
) -> list[RunResult]:
    """Run the jobs here, in order; ``progress(name)`` gives each run's TrainingCallbacks, ``after_each()`` is
    called after each run that ended well. Stops at the first error."""
    results = []
    for job in jobs:
        with progress(job.spec.name) as callbacks:
            results.append(run_fold_job(job, callbacks))
        after_each()
    return results
