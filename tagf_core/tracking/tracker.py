"""The interface the training loop logs through, an in-memory implementation for tests, and ``tracked``.

Imports neither torch nor mlflow at module level: the loop and the tests import this module cheaply, and only
``mlflow_tracker`` talks to MLflow.
"""

from __future__ import annotations

import copy
import logging
import signal
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Literal, Protocol

from tagf_core.errors import TagfError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]
ParentStatus = Literal["RUNNING", "FINISHED", "FAILED", "KILLED"]


class Tracker(Protocol):
    """One tracked run: parameters, per-epoch metrics, files, the model and the data it was trained on."""

    run_id: str

    def log_params(self, params: Mapping[str, object]) -> None:
        """Log flat ``key → value`` params (values stringified).

        Logging a key again with an equal value does nothing (resume); a different value raises.

        Raises:
            TagfError: a key already holds a different value; the message names the key and both values.
        """
        ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log ``key → value`` metrics at ``step`` (the epoch)."""
        ...

    def logged_steps(self, key: str) -> set[int]:
        """The steps already logged for metric ``key`` (empty if none): a resumed run logs the others only."""
        ...

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Log a file or a folder.

        A file lands at ``<artifact_path>/<name>``. A folder's contents land under ``artifact_path``, or under
        the folder's own name when ``artifact_path`` is None: ``log_artifact(run/"plots", "plots")`` and
        ``log_artifact(run/"plots")`` both give ``plots/curves.png``.
        """
        ...

    def log_model(
        self,
        model: torch.nn.Module,
        example_inputs: dict[str, torch.Tensor],
        name: str,
        *,
        step: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Log ``model`` as a loadable model named ``name``, linked to the run's metrics at ``step`` (the best
        epoch) and carrying the run's params and ``tags``; ``model(**example_inputs)`` must run."""
        ...

    def register_model(self, name: str, score: float) -> bool:
        """Register the model logged last as a new version of ``name``; it becomes the ``champion`` alias when
        ``score`` beats the current champion's. Returns whether it did."""
        ...

    def log_dataset(self, name: str, digest: str, source: str) -> None:
        """Record the data the run trained on: its ``name``, a content ``digest`` and where it lives."""
        ...

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set (or overwrite) tags on the run."""
        ...

    def close(self, status: RunStatus = "FINISHED") -> None:
        """End the run with ``status``."""
        ...


def parent_status(child_statuses: Iterable[str]) -> ParentStatus | None:
    """The status a stamp's parent run shows, from its children's: the rule, stated once.

    RUNNING while any child runs (or is scheduled); else FAILED if any child failed; else KILLED if any was
    killed; else FINISHED (every child finished). None without children: nothing to say. A caller passes one
    status per run (the latest attempt of each run name), and FAILED/KILLED for a run that ended before it had
    an MLflow run of its own (``MlflowSession.record_failed_start``).
    """
    statuses = set(child_statuses)
    if not statuses:
        return None
    for status in ("RUNNING", "SCHEDULED", "FAILED", "KILLED"):
        if status in statuses:
            return "RUNNING" if status == "SCHEDULED" else status  # type: ignore[return-value]
    return "FINISHED"


def param_conflicts(existing: Mapping[str, str], params: Mapping[str, object]) -> list[str]:
    """``key: 'old' ≠ 'new'`` for every key of ``params`` that ``existing`` holds with another value."""
    return [
        f"{key}: {existing[key]!r} (logged) vs {str(value)!r} (now)"
        for key, value in params.items()
        if key in existing and existing[key] != str(value)
    ]


def raise_on_param_conflicts(run_id: str, existing: Mapping[str, str], params: Mapping[str, object]) -> None:
    """Raise one TagfError listing every key whose value differs from the one the run already holds."""
    conflicts = param_conflicts(existing, params)
    if conflicts:
        raise TagfError(
            f"run {run_id} already holds different values for {len(conflicts)} param(s): {'; '.join(conflicts)} "
            "(a resumed run keeps its config; start a new run with another --stamp to change it)"
        )


def artifact_names(path: Path, artifact_path: str | None = None) -> list[str]:
    """The artifact paths ``log_artifact(path, artifact_path)`` creates (see ``Tracker.log_artifact``)."""
    path = Path(path)
    if path.is_file():
        return [f"{artifact_path}/{path.name}" if artifact_path else path.name]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder to log as an artifact")
    prefix = artifact_path if artifact_path else path.name
    return sorted(f"{prefix}/{file.relative_to(path).as_posix()}" for file in path.rglob("*") if file.is_file())


@dataclass
class InMemoryTracker:
    """A Tracker that records everything it is given, in memory; tests inspect its fields.

    ``artifacts`` holds ``(path, artifact_path)`` as given, ``artifact_files`` the artifact paths they created
    (listed when logged, as ``Tracker.log_artifact`` lays them out); ``models`` holds a copy of each model.
    """

    run_id: str = "in-memory"
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int]] = field(default_factory=list)
    artifacts: list[tuple[Path, str | None]] = field(default_factory=list)
    artifact_files: set[str] = field(default_factory=set)
    models: list[tuple[str, torch.nn.Module, dict[str, torch.Tensor]]] = field(default_factory=list)
    model_links: list[tuple[str, int, dict[str, str]]] = field(default_factory=list)
    """(name, step, tags) of each logged model."""
    registered: list[tuple[str, float, bool]] = field(default_factory=list)
    """(registered name, score, became champion) of each registration."""
    champions: dict[str, float] = field(default_factory=dict)
    datasets: list[tuple[str, str, str]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    status: str = "RUNNING"

    def log_params(self, params: Mapping[str, object]) -> None:
        raise_on_param_conflicts(self.run_id, self.params, params)
        self.params.update({key: str(value) for key, value in params.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.metrics.extend((key, float(value), int(step)) for key, value in metrics.items())

    def logged_steps(self, key: str) -> set[int]:
        return {step for logged_key, _, step in self.metrics if logged_key == key}

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.artifact_files.update(artifact_names(path, artifact_path))
        self.artifacts.append((Path(path), artifact_path))

    def log_model(
        self,
        model: torch.nn.Module,
        example_inputs: dict[str, torch.Tensor],
        name: str,
        *,
        step: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        # a copy: the loop keeps training the model it passed
        self.models.append((name, copy.deepcopy(model), {k: v.detach().clone() for k, v in example_inputs.items()}))
        self.model_links.append((name, step, dict(tags or {})))

    def register_model(self, name: str, score: float) -> bool:
        champion = score > self.champions.get(name, float("-inf"))
        if champion:
            self.champions[name] = score
        self.registered.append((name, score, champion))
        return champion

    def log_dataset(self, name: str, digest: str, source: str) -> None:
        self.datasets.append((name, digest, source))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.tags.update({key: str(value) for key, value in tags.items()})

    def close(self, status: RunStatus = "FINISHED") -> None:
        self.status = status

    def metric(self, key: str) -> dict[int, float]:
        """``step → value`` of metric ``key`` (the last value logged at a step wins)."""
        return {step: value for logged_key, value, step in self.metrics if logged_key == key}


def _raise_system_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def tracked(tracker: Tracker, *, handle_sigterm: bool = True) -> Iterator[Tracker]:
    """Close ``tracker`` however the block ends: FINISHED, KILLED or FAILED, never left RUNNING.

    KeyboardInterrupt and SystemExit (also SIGTERM, which this turns into ``SystemExit(143)`` while the block
    runs, when called from the main thread and no other SIGTERM handler is installed) → KILLED; any other
    exception → FAILED. The exception is re-raised; an error while closing never hides it.
    """
    previous = None
    main_thread = threading.current_thread() is threading.main_thread()
    if handle_sigterm and main_thread and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        previous = signal.signal(signal.SIGTERM, _raise_system_exit)
    try:
        yield tracker
        tracker.close("FINISHED")  # inside the try: a SIGTERM arriving now still ends the run KILLED
    except (KeyboardInterrupt, SystemExit):
        _close_quietly(tracker, "KILLED")
        raise
    except BaseException:
        _close_quietly(tracker, "FAILED")
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _close_quietly(tracker: Tracker, status: RunStatus) -> None:
    """Close while another exception propagates: a failure to close is logged, the original error wins."""
    try:
        tracker.close(status)
    except Exception:
        log.warning("could not mark run %s %s", tracker.run_id, status, exc_info=True)
