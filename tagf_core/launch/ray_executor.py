"""Fold × emotion jobs as Ray tasks: one per run (one GPU each where the cluster has GPUs), retried when the
worker dies; with frozen backbones one task builds the embedding cache first. See ``job.py`` for the job."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagf_core.config import TagfConfig
from tagf_core.errors import TagfError
from tagf_core.launch.job import FoldJob, JobEvent, run_fold_job
from tagf_core.training.run import RunResult, worker_name

if TYPE_CHECKING:
    from tagf_core.training.setup import RunData

log = logging.getLogger(__name__)

DEFAULT_MAX_RETRIES = 3
_POLL_S = 1.0


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

    def on_embedding_start(self, trials: int) -> None:
        pass  # the driver prepares the cache before the tasks start (``_ray_prepare``)

    def on_embedded(self, trial: str) -> None:
        log.info("%s: embedded %s (frozen backbones, cached for later runs)", self.name, trial)


def _ray_task(job: FoldJob, board: Any) -> RunResult:
    _use_assigned_cpus()
    return run_fold_job(job, _RayCallbacks(board, job.spec.name))


def _ray_prepare(cfg: TagfConfig, data: RunData, folds: list[int], debug: bool) -> list[Path]:
    from tagf_core.training.setup import prepare_embedding_caches

    _use_assigned_cpus()
    return prepare_embedding_caches(cfg, data, folds, debug=debug)


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
) -> tuple[list[RunResult], list[tuple[str, str]]]:
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
        check_cluster(ray, jobs)
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


def check_cluster(ray: Any, jobs: Sequence[FoldJob]) -> None:
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    uri = jobs[0].tracking.uri if jobs else ""
    if len(nodes) > 1 and not uri.lower().startswith(("http://", "https://")):
        raise TagfError(
            f"the Ray cluster has {len(nodes)} machines but the tracking store {uri} is on this one's disk; "
            "set MLFLOW_TRACKING_URI to a tracking server all of them reach (http://HOST:5000)"
        )


def task_resources(ray: Any) -> tuple[dict[str, float], dict[str, float]]:
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
) -> tuple[list[RunResult], list[tuple[str, str]]]:
    cache_resources, run_resources = task_resources(ray)
    board = ray.remote(num_cpus=0)(_Board).remote()
    frozen = [job for job in jobs if job.cfg.train.backbone == "frozen"]
    if frozen:
        on_event(JobEvent("embeddings", "started", "building the frozen-backbone embedding cache once"))
        prepare = ray.remote(max_retries=options.max_retries, **cache_resources)(_ray_prepare)
        folds = sorted({job.spec.fold for job in frozen})
        try:
            ray.get(prepare.remote(frozen[0].cfg, frozen[0].data, folds, frozen[0].debug))
        except ray.exceptions.RayTaskError as e:
            raise unwrap_task_error(e) from e
        on_event(JobEvent("embeddings", "finished", "embedding cache ready"))

    task = ray.remote(max_retries=options.max_retries, **run_resources)(_ray_task)
    pending = {task.remote(job, board): job for job in jobs}
    results: dict[str, RunResult] = {}
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
                    message = str(unwrap_task_error(e))
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


def unwrap_task_error(error: Exception) -> TagfError:
    """The task's own TagfError (it says what to fix) where Ray wraps one, else the error in one line."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, TagfError):
        return cause
    culprit = cause if isinstance(cause, BaseException) else error
    lines = [line.strip() for line in str(culprit).splitlines() if line.strip()]
    return TagfError(f"{type(culprit).__name__}: {lines[0] if lines else 'no message'}")


def _describe(result: RunResult) -> str:
    resumed = f", resumed at epoch {result.started_epoch}" if result.started_epoch else ""
    return (
        f"best validation CCC {result.best_val_ccc:.4f} at epoch {result.best_epoch} ({result.stop_reason}) "
        f"on {result.worker}{resumed}; run {result.run_id}"
    )
