"""Many fold × emotion runs from one command: in sequence in this process, or as Ray tasks across a cluster.

Both executors run the same job, ``run_fold_job``: open the run's child under the stamp's parent run on the
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
import socket
import subprocess
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tagf_core.config import TagfConfig
from tagf_core.data.folds import split_fold
from tagf_core.data.layout import read_manifest
from tagf_core.errors import TagfError
from tagf_core.training.run import RunPaths, RunSpec, run_config

Executor = Literal["local", "ray"]
EXECUTORS: tuple[Executor, ...] = ("local", "ray")
DEFAULT_MAX_RETRIES = 3
_POLL_S = 1.0


@dataclass(frozen=True)
class TrackingTarget:
    """The MLflow store every job logs to; on a cluster, a server all machines reach."""

    uri: str
    experiment: str
    artifact_root: Path


@dataclass(frozen=True)
class FoldJob:
    """One fold × emotion run, with everything a process on another machine needs to run it."""

    cfg: TagfConfig
    spec: RunSpec
    tracking: TrackingTarget
    parent_run_id: str
    tags: dict[str, str]
    resume: bool
    overwrite: bool
    debug: bool
    launch: str
    """Id of the command that submitted the job: a retried attempt that finds it in run.json resumes."""


@dataclass(frozen=True)
class JobResult:
    name: str
    run_id: str
    best_val_ccc: float
    best_epoch: int
    epochs_run: int
    stop_reason: str
    folder: Path
    worker: str
    """host:pid of the process that finished the run."""
    started_epoch: int


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
            "data": cfg.data.model_copy(update={"processed_root": absolute(cfg.data.processed_root)}),
            "train": cfg.train.model_copy(
                update={"output_root": absolute(cfg.train.output_root), "weights_dir": absolute(cfg.train.weights_dir)}
            ),
            "tracking": cfg.tracking.model_copy(update={"artifact_root": absolute(cfg.tracking.artifact_root)}),
        }
    )


def absolute_tracking_uri(uri: str) -> str:
    """``sqlite:///relative.db`` → ``sqlite:////abs/relative.db``; other URIs as they are."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        path, _, query = uri[len(prefix) :].partition("?")
        if path and path != ":memory:":
            return prefix + str(Path(path).resolve()) + (f"?{query}" if query else "")
    return uri


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_fold_job(job: FoldJob, callbacks: Any = None) -> JobResult:
    """Train (or resume) the job's run where this process runs; see the module docstring for retries."""
    from tagf_core.tracking.mlflow_tracker import MlflowSession
    from tagf_core.training.loop import launch_of, train_run

    paths = RunPaths.of(job.cfg.train.output_root, job.spec)
    if not paths.folder.parent.is_dir():
        raise TagfError(
            f"{paths.folder.parent}: not visible on {socket.gethostname()}; the output root must be shared "
            "storage mounted at the same path on every machine"
        )
    launch = launch_of(paths)
    retry = launch == job.launch
    session = MlflowSession(job.tracking.uri, job.tracking.experiment, job.tracking.artifact_root)

    def open_tracker(run_id: str | None) -> Any:
        return session.child(job.parent_run_id, job.spec.name, job.tags, run_id=run_id)

    result = train_run(
        job.cfg,
        job.spec,
        open_tracker,
        resume=retry or (job.resume and launch is not None),  # --resume starts the runs that never started
        overwrite=job.overwrite and not retry,
        debug=job.debug,
        callbacks=callbacks,
        launch=job.launch,
    )
    return JobResult(
        name=job.spec.name,
        run_id=result.run_id,
        best_val_ccc=result.best_val_ccc,
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        stop_reason=result.stop_reason,
        folder=result.paths.folder,
        worker=worker_name(),
        started_epoch=result.started_epoch,
    )


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
) -> list[JobResult]:
    """Train every fold × emotion: the parent run once, then one job per run on the chosen executor.

    ``progress(name)`` gives each local run's TrainingCallbacks; Ray runs report through ``on_event``.

    Raises:
        TagfError: bad input or an unreachable tracking server (before any training work), or, after all the
            others finished, the runs that failed.
    """
    from tagf_core.tracking.mlflow_tracker import MlflowSession, resolve_tracking_uri

    if executor not in EXECUTORS:
        raise TagfError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    cfg = absolute_config(cfg)
    specs = [
        RunSpec(stamp, fold, emotion, model)  # type: ignore[arg-type]
        for fold in folds
        for emotion in emotions
        for model in models
    ]
    tracking = TrackingTarget(
        absolute_tracking_uri(resolve_tracking_uri(cfg.tracking.tracking_uri)),
        cfg.tracking.experiment_name,
        cfg.tracking.artifact_root,
    )
    records = read_manifest(cfg.data.processed_root)
    for fold in folds:  # every fold's split is checked now, not after the runs before it trained for hours
        split_fold(records, fold, debug=debug)
    if executor == "ray":
        check_ray_address((ray_options or RayOptions()).address or os.environ.get("RAY_ADDRESS"))
    session = MlflowSession(tracking.uri, tracking.experiment, tracking.artifact_root)
    session.check_reachable()
    parent = session.parent_run(stamp)
    (cfg.train.output_root / stamp).mkdir(parents=True, exist_ok=True)
    launch, commit = new_launch(), git_commit()
    jobs = [
        FoldJob(
            run_config(cfg, spec),
            spec,
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
    if executor == "local":
        return run_in_sequence(jobs, progress)
    results, failures = run_on_ray(jobs, ray_options or RayOptions(), on_event)
    if failures:
        listed = "; ".join(f"{name}: {message}" for name, message in failures)
        raise TagfError(
            f"{len(failures)} of {len(jobs)} runs failed ({listed}); the others are kept: rerun the failed ones "
            "(`tagf train … --resume` continues the started ones and starts the others)"
        )
    return results


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


def run_in_sequence(jobs: Sequence[FoldJob], progress: Callable[[str], AbstractContextManager[Any]]) -> list[JobResult]:
    """Run the jobs here, in order; ``progress(name)`` gives each run's TrainingCallbacks. Stops at the first error."""
    results = []
    for job in jobs:
        with progress(job.spec.name) as callbacks:
            results.append(run_fold_job(job, callbacks))
    return results


# ---- Ray: one task per job, retried when its worker dies -----------------------------------------------------


class _RayCallbacks:
    """TrainingCallbacks inside a Ray task: events go to the board actor the driver reads."""

    def __init__(self, board: Any, name: str) -> None:
        self.board, self.name = board, name
        self._started = False

    def on_epoch_start(self, epoch: int, max_epochs: int, num_batches: int) -> None:
        if not self._started:
            self._started = True
            how = f"resuming at epoch {epoch}" if epoch else "from epoch 0"
            self.board.post.remote(JobEvent(self.name, "started", f"running on {worker_name()}, {how}/{max_epochs}"))

    def on_batch(self) -> None:
        pass

    def on_epoch_end(self, row: dict[str, float]) -> None:
        self.board.post.remote(JobEvent(self.name, "epoch", "", dict(row)))


def _ray_task(job: FoldJob, board: Any) -> JobResult:
    _use_assigned_cpus()
    return run_fold_job(job, _RayCallbacks(board, job.spec.name))


def _ray_prepare(cfg: TagfConfig, folds: list[int], debug: bool) -> list[Path]:
    from tagf_core.training.loop import prepare_embedding_caches

    _use_assigned_cpus()
    return prepare_embedding_caches(cfg, folds, debug=debug)


def _use_assigned_cpus() -> None:
    """As many torch threads as the task was given CPUs: Ray reuses worker processes between tasks of different
    sizes, and a run's arithmetic (hence its exact numbers) depends on its thread count."""
    import ray
    import torch

    torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))


class _Board:
    """A Ray actor holding the events tasks post until the driver takes them."""

    def __init__(self) -> None:
        self.events: list[JobEvent] = []

    def post(self, event: JobEvent) -> None:
        self.events.append(event)

    def take(self) -> list[JobEvent]:
        events, self.events = self.events, []
        return events


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None
    """A running cluster (``ray start --head`` prints it), ``auto``, or None: RAY_ADDRESS, else a local instance."""
    max_retries: int = DEFAULT_MAX_RETRIES
    """How many times a task whose worker died is started again (it then resumes from its checkpoint)."""


def run_on_ray(
    jobs: Sequence[FoldJob], options: RayOptions, on_event: Callable[[JobEvent], None]
) -> tuple[list[JobResult], list[tuple[str, str]]]:
    """Submit one Ray task per job, wait for all, and return the results and the (name, error) of failed jobs.

    Connects to ``options.address`` (or starts a local Ray) unless Ray is already initialised in this process.

    Raises:
        TagfError: ray is not installed, the cluster cannot be reached, or a multi-machine cluster would log to
            a store on this machine's disk.
    """
    try:
        import ray
    except ImportError as e:
        raise TagfError("--executor ray needs Ray: pip install 'tagf[ray]'") from e
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=options.address, include_dashboard=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise TagfError(f"Ray cluster {options.address or os.environ.get('RAY_ADDRESS', 'local')}: {e}") from e
    try:
        _check_cluster(ray, jobs)
        return _submit_and_wait(ray, jobs, options, on_event)
    finally:
        if started_here:
            ray.shutdown()


def check_ray_address(address: str | None, timeout_s: float = 5.0) -> None:
    """Make sure a ``host:port`` (or ``ray://host:port``) cluster address answers: Ray itself waits minutes.

    Raises:
        TagfError: nothing listens there (one line naming the address).
    """
    if not address or address in {"auto", "local"}:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise TagfError(f"Ray address {address!r} is not host:port (as `ray start --head` prints it) or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise TagfError(
            f"Ray cluster {address} does not answer ({e.strerror or e}); start it with `ray start --head` "
            "or fix --ray-address / RAY_ADDRESS"
        ) from e


def _check_cluster(ray: Any, jobs: Sequence[FoldJob]) -> None:
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    uri = jobs[0].tracking.uri if jobs else ""
    if len(nodes) > 1 and not uri.lower().startswith(("http://", "https://")):
        raise TagfError(
            f"the Ray cluster has {len(nodes)} machines but the tracking store {uri} is on this one's disk; "
            "set MLFLOW_TRACKING_URI to a tracking server all of them reach (http://HOST:5000)"
        )


def _resources(ray: Any) -> tuple[dict[str, float], dict[str, float]]:
    """What the cache task and each run task ask for: one GPU each where the cluster has GPUs, else CPUs.

    On CPUs only, the cache task, which runs alone, takes the largest machine's cores (Ray gives a task as
    many torch threads as CPUs), and each run one core.
    """
    if ray.cluster_resources().get("GPU", 0) >= 1:
        return {"num_gpus": 1, "num_cpus": 1}, {"num_gpus": 1, "num_cpus": 1}
    cores = max((node["Resources"].get("CPU", 1) for node in ray.nodes() if node.get("Alive")), default=1)
    return {"num_cpus": max(1, int(cores))}, {"num_cpus": 1}


def _submit_and_wait(
    ray: Any, jobs: Sequence[FoldJob], options: RayOptions, on_event: Callable[[JobEvent], None]
) -> tuple[list[JobResult], list[tuple[str, str]]]:
    cache_resources, run_resources = _resources(ray)
    board = ray.remote(num_cpus=0)(_Board).remote()
    frozen = [job for job in jobs if job.cfg.train.backbone == "frozen"]
    if frozen:
        on_event(JobEvent("embeddings", "started", "building the frozen-backbone embedding cache once"))
        prepare = ray.remote(max_retries=options.max_retries, **cache_resources)(_ray_prepare)
        folds = sorted({job.spec.fold for job in frozen})
        try:
            ray.get(prepare.remote(frozen[0].cfg, folds, frozen[0].debug))
        except ray.exceptions.RayTaskError as e:
            raise _unwrap(e) from e
        on_event(JobEvent("embeddings", "finished", "embedding cache ready"))

    task = ray.remote(max_retries=options.max_retries, **run_resources)(_ray_task)
    pending = {task.remote(job, board): job for job in jobs}
    results: dict[str, JobResult] = {}
    failures: list[tuple[str, str]] = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=_POLL_S)
            for event in ray.get(board.take.remote()):
                on_event(event)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as e:
                    message = str(_unwrap(e))
                    failures.append((job.spec.name, message))
                    on_event(JobEvent(job.spec.name, "failed", message))
                    continue
                results[job.spec.name] = result
                on_event(JobEvent(job.spec.name, "finished", _describe(result)))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)  # a KeyboardInterrupt inside each task, which ends its MLflow run as KILLED
        ray.wait(list(pending), num_returns=len(pending), timeout=30)  # let them record it before Ray stops
        raise
    for event in ray.get(board.take.remote()):
        on_event(event)
    return [results[job.spec.name] for job in jobs if job.spec.name in results], failures


def _unwrap(error: Exception) -> TagfError:
    """The task's own TagfError (it says what to fix) where Ray wraps one, else the error in one line."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, TagfError):
        return cause
    culprit = cause if isinstance(cause, BaseException) else error
    lines = [line.strip() for line in str(culprit).splitlines() if line.strip()]
    return TagfError(f"{type(culprit).__name__}: {lines[0] if lines else 'no message'}")


def _describe(result: JobResult) -> str:
    resumed = f", resumed at epoch {result.started_epoch}" if result.started_epoch else ""
    return (
        f"best validation CCC {result.best_val_ccc:.4f} at epoch {result.best_epoch} ({result.stop_reason}) "
        f"on {result.worker}{resumed}; run {result.run_id}"
    )
