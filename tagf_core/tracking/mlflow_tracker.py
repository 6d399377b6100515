"""The Tracker on MLflow: one parent run per stamp, one child run per fold × emotion.

Everything goes through ``mlflow.tracking.MlflowClient`` with explicit run ids, so several runs can be open in
one process and nothing depends on MLflow's global active run. mlflow is imported inside the functions that
need it (importing it takes seconds), never at module level. Longer than the other modules: it is the whole
MLflow vocabulary of tagf, the session (store, experiment, parent runs and their status) and one run's tracker.

Layout in the experiment: the parent run is named ``<stamp>`` and tagged ``tagf.role=parent``,
``tagf.stamp=<stamp>``; it holds what ``collect`` logs, and its status follows its children's
(``tracker.parent_status``): it turns RUNNING when a child starts and is settled again whenever a child ends
(``settle_parent``). A child run is named ``<stamp>/<run folder name>`` (``child_run_name``, e.g.
``a/fold0-valence``: unique across stamps in the UI; stores written before that name it ``fold0-valence``, and
``run_folder_name`` reads both), tagged ``tagf.role=child`` and
``mlflow.parentRunId=<parent>`` (how the UI nests runs), plus the tags its caller gives. A run that ended before
its child run existed (bad data or weights) is recorded on the parent as a ``tagf.start.<name>`` tag holding
FAILED or KILLED, and counts as such until the run has a child. A parent that ends takes the end of its last
child, so that it spans its children; ``launch/cross_validation.py`` logs the stamp's results on it.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagf_core.config import TrackingConfig
from tagf_core.errors import TagfError
from tagf_core.tracking.store import open_client, store_lock
from tagf_core.tracking.tracker import (
    ParentStatus,
    RunStatus,
    artifact_names,
    parent_status,
    raise_on_param_conflicts,
    tracked,
)

if TYPE_CHECKING:
    import torch
    from mlflow.tracking import MlflowClient

__all__ = [
    "MlflowSession",
    "MlflowTracker",
    "TrackingTarget",
    "child_run_name",
    "resolve_tracking_uri",
    "run_folder_name",
    "tracked",
]

log = logging.getLogger(__name__)

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
REACHABLE_TIMEOUT_S = 5.0
ROLE_TAG, STAMP_TAG, PARENT_TAG = "tagf.role", "tagf.stamp", "mlflow.parentRunId"
START_TAG_PREFIX = "tagf.start."
CHAMPION = "champion"
"""The alias of the best registered version of a model (``register_model``)."""
# MLflow's limits: params and metrics per log_batch call, and the length of a dataset digest
_PARAMS_PER_BATCH, _METRICS_PER_BATCH, _DATASET_DIGEST_LEN = 100, 1000, 36


def child_run_name(stamp: str, folder_name: str) -> str:
    """The MLflow name of a child run: ``<stamp>/<run folder name>``, e.g. ``a/fold0-valence``."""
    return f"{stamp}/{folder_name}"


def run_folder_name(run_name: str) -> str:
    """The run folder's name a child run's MLflow name stands for: the part after the last ``/`` (a stamp holds
    none), so ``a/fold0-valence`` and the older ``fold0-valence`` both give ``fold0-valence``."""
    return run_name.rpartition("/")[2]


def resolve_tracking_uri(default: str) -> str:
    """``MLFLOW_TRACKING_URI`` if set (and not empty), else ``default`` (the config's ``sqlite:///mlflow.db``)."""
    return os.environ.get(TRACKING_URI_ENV) or default


def absolute_tracking_uri(uri: str) -> str:
    """``sqlite:///relative.db`` → ``sqlite:////abs/relative.db``; other URIs as they are."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        path, _, query = uri[len(prefix) :].partition("?")
        if path and path != ":memory:":
            return prefix + str(Path(path).resolve()) + (f"?{query}" if query else "")
    return uri


@dataclass(frozen=True)
class TrackingTarget:
    """The MLflow store and experiment runs log to, resolved once: what every process of a launch opens."""

    uri: str
    experiment: str
    artifact_root: Path

    @classmethod
    def of(cls, tracking: TrackingConfig) -> TrackingTarget:
        """``MLFLOW_TRACKING_URI`` or the config's store (a relative sqlite path made absolute), its experiment
        and artifact root (absolute)."""
        uri = absolute_tracking_uri(resolve_tracking_uri(tracking.tracking_uri))
        return cls(uri, tracking.experiment_name, Path(tracking.artifact_root).expanduser().resolve())

    def open(self) -> MlflowSession:
        """The one way to open a session on the store (imports mlflow)."""
        return MlflowSession(self.uri, self.experiment, self.artifact_root)


def _is_server(uri: str) -> bool:
    """A remote tracking server decides where artifacts go; a local store gets our artifact root."""
    return uri.split(":", 1)[0].lower() in {"http", "https", "databricks"}


class MlflowSession:
    """The experiment runs are logged to, on the store at ``tracking_uri``.

    Nothing is contacted until a run is asked for: call ``check_reachable`` first to fail fast on a dead server.
    """

    def __init__(self, tracking_uri: str, experiment_name: str, artifact_root: Path = Path("mlruns")) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.artifact_root = Path(artifact_root)
        self.client: MlflowClient = open_client(tracking_uri)
        self._experiment_id: str | None = None

    def check_reachable(self, timeout_s: float = REACHABLE_TIMEOUT_S) -> None:
        """For an http(s) store, make sure the server answers within ``timeout_s``; local stores always pass.

        Raises:
            TagfError: the server does not answer (one line naming the URI).
        """
        if not self.tracking_uri.lower().startswith(("http://", "https://")):
            return
        url = self.tracking_uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s):  # noqa: S310 (the user's own tracking URI)
                pass
        except urllib.error.HTTPError:
            return  # it answered (maybe 401/404): reachable; auth errors surface with the first request
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TagfError(
                f"MLflow tracking server {self.tracking_uri} does not answer ({' '.join(str(reason).split())}); "
                f"start it, or point {TRACKING_URI_ENV} at a reachable server"
            ) from e

    @property
    def experiment_id(self) -> str:
        """The experiment's id, creating the experiment on first use."""
        if self._experiment_id is None:
            self._experiment_id = self._ensure_experiment()
        return self._experiment_id

    def _ensure_experiment(self) -> str:
        """Get or create the experiment; race-free: a local store is locked, a server's refusal is read back."""
        from mlflow.exceptions import MlflowException

        with store_lock(self.tracking_uri):
            experiment_id = self._existing_experiment()
            if experiment_id is not None:
                return experiment_id
            location = None if _is_server(self.tracking_uri) else self.artifact_root.resolve().as_uri()
            try:
                return str(self.client.create_experiment(self.experiment_name, artifact_location=location))
            except MlflowException as e:
                # another process created it since the lookup (a server; a local store is locked)
                if e.error_code != "RESOURCE_ALREADY_EXISTS" or (found := self._existing_experiment()) is None:
                    raise
                return found

    def _existing_experiment(self) -> str | None:
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            return None
        if experiment.lifecycle_stage != "active":
            raise TagfError(
                f"MLflow experiment {self.experiment_name!r} in {self.tracking_uri} is deleted; restore it "
                f"(`mlflow experiments restore --experiment-id {experiment.experiment_id}`) or pick another "
                "with --experiment"
            )
        return str(experiment.experiment_id)

    def parent_run(self, stamp: str) -> str:
        """The run id of the stamp's parent run, created (named ``stamp``, FINISHED) if there is none yet.

        Two launches of one stamp at once find one parent on a local store (its lock is held meanwhile).
        """
        experiment_id = self.experiment_id  # before the lock: getting it may take the lock itself
        with store_lock(self.tracking_uri):
            found = self.find_parent_run(stamp)
            if found is not None:
                return found
            run = self.client.create_run(
                experiment_id, run_name=stamp, tags={ROLE_TAG: "parent", STAMP_TAG: stamp, "stamp": stamp}
            )
            self.client.set_terminated(run.info.run_id, "FINISHED")  # no child yet: nothing unfinished
            return str(run.info.run_id)

    def find_parent_run(self, stamp: str) -> str | None:
        """The run id of the stamp's parent run (the earliest, should there be several), or None."""
        # the stamp is compared here, not in the filter: no quoting rules for odd stamps
        candidates = [
            run for run in self._search(f"tags.`{ROLE_TAG}` = 'parent'") if run.data.tags.get(STAMP_TAG) == stamp
        ]
        return str(min(candidates, key=lambda run: run.info.start_time).info.run_id) if candidates else None

    def children(self, parent_id: str) -> list[Any]:
        """The child runs of ``parent_id`` (MLflow ``Run`` objects), every attempt of every run name."""
        return self._search(f"tags.`{PARENT_TAG}` = '{parent_id}'")

    def settle_parent(self, parent_id: str) -> ParentStatus | None:
        """Set the parent's status from its children's (``tracker.parent_status``); returns it (None: no child).

        Per run (``run_folder_name`` of its name), the latest child counts (``--overwrite`` starts a new one), and
        a failed start recorded for a run without a child counts as its status. A parent that ends takes the end of
        its last child (now, after a failed start), so that it spans its children. On a local store the lock makes
        reading the children and writing the parent one step, so two children ending at once cannot leave a stale
        status behind.
        """
        self.experiment_id  # noqa: B018 (before the lock: getting it may take the lock itself)
        with store_lock(self.tracking_uri):
            latest: dict[str, Any] = {}
            for run in self.children(parent_id):
                name = run_folder_name(run.info.run_name or "")
                if name not in latest or run.info.start_time > latest[name].info.start_time:
                    latest[name] = run
            parent = self.client.get_run(parent_id)
            failed_starts = {
                key[len(START_TAG_PREFIX) :]: value
                for key, value in parent.data.tags.items()
                if key.startswith(START_TAG_PREFIX) and value in ("FAILED", "KILLED")
            }
            statuses = [run.info.status for run in latest.values()]
            statuses += [status for name, status in failed_starts.items() if name not in latest]
            status = parent_status(statuses)
            if status is not None and status != parent.info.status:
                ends = [run.info.end_time for run in latest.values() if run.info.end_time]
                self._set_status(parent_id, status, end_time=max(ends) if ends and not failed_starts else None)
            return status

    def record_failed_start(self, parent_id: str, name: str, status: RunStatus) -> None:
        """Run ``name`` ended (``status``: FAILED or KILLED) before it had a child run: say so on the parent."""
        self.client.set_tag(parent_id, f"{START_TAG_PREFIX}{name}", status)
        self.settle_parent(parent_id)

    def _set_status(self, run_id: str, status: ParentStatus, end_time: int | None = None) -> None:
        """``end_time`` (ms) of an ended run; None: now."""
        if status == "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.client.set_terminated(run_id, status, end_time=end_time)

    def _search(self, filter_string: str) -> list[Any]:
        """Every active run of the experiment that ``filter_string`` selects, all pages."""
        from mlflow.entities import ViewType

        runs: list[Any] = []
        page_token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=filter_string,
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=1000,
                page_token=page_token,
            )
            runs += list(page)
            page_token = page.token
            if not page_token:
                return runs

    def child(self, parent_id: str, name: str, tags: Mapping[str, str], run_id: str | None = None) -> MlflowTracker:
        """A new child run ``name`` under ``parent_id``, or, with ``run_id``, that earlier run re-opened (resume).

        The parent turns RUNNING with it; closing the child settles the parent again (``settle_parent``).

        Raises:
            TagfError: ``run_id`` is not a live run of this store.
        """
        all_tags = {**{k: str(v) for k, v in tags.items()}, ROLE_TAG: "child", PARENT_TAG: parent_id}
        if run_id is None:
            run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
            tracker = MlflowTracker(self, str(run.info.run_id), parent_id=parent_id)
        else:
            self._existing_run(run_id)
            self.client.update_run(run_id, status="RUNNING")
            tracker = MlflowTracker(self, run_id, parent_id=parent_id)
            tracker.set_tags(all_tags)
        self._set_status(parent_id, "RUNNING")
        return tracker

    def parent_tracker(self, parent_id: str) -> MlflowTracker:
        """A tracker on the parent run, for ``collect``; closing it leaves the parent's status as it is."""
        self._existing_run(parent_id)
        return MlflowTracker(self, parent_id, set_status_on_close=False)

    def load_model(self, model_uri: str) -> torch.nn.Module:
        """Load a model this store holds, e.g. ``runs:/<run_id>/model`` or the ``models:/…`` URI of a run."""
        import mlflow.pytorch

        with self.global_tracking_uri():
            model: torch.nn.Module = mlflow.pytorch.load_model(model_uri)
        return model

    @contextmanager
    def global_tracking_uri(self) -> Iterator[None]:
        """Point MLflow's process-wide tracking URI at this store for the block, then put back what was there.

        Only for the fluent helpers that take no client (``mlflow.pytorch.log_model``/``load_model``). MLflow's
        own ``set_tracking_uri`` also writes and, when resetting, deletes ``MLFLOW_TRACKING_URI``; the variable
        is restored too.
        """
        import mlflow

        saved_env = os.environ.get(TRACKING_URI_ENV)
        mlflow.set_tracking_uri(self.tracking_uri)
        try:
            yield
        finally:
            # unset again rather than set to what it was: an explicit setting would outlive the environment
            # variable it came from (MLflow's own set_tracking_uri writes the variable, so nothing is lost)
            mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
            if saved_env is None:
                os.environ.pop(TRACKING_URI_ENV, None)
            else:
                os.environ[TRACKING_URI_ENV] = saved_env

    def _existing_run(self, run_id: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException as e:
            raise TagfError(
                f"MLflow run {run_id} is not in {self.tracking_uri}; it was logged to another tracking store "
                f"(set {TRACKING_URI_ENV} to that one)"
            ) from e
        if run.info.lifecycle_stage != "active":
            raise TagfError(f"MLflow run {run_id} in {self.tracking_uri} is deleted; restore it in the MLflow UI")
        return run


class MlflowTracker:
    """A ``Tracker`` writing to one MLflow run through the session's client."""

    def __init__(
        self, session: MlflowSession, run_id: str, *, set_status_on_close: bool = True, parent_id: str | None = None
    ) -> None:
        self.session = session
        self.client = session.client
        self.run_id = run_id
        self.parent_id = parent_id
        """The parent of a child run, settled when the child closes."""
        self._set_status_on_close = set_status_on_close
        self._logged_model_id: str | None = None

    def log_params(self, params: Mapping[str, object]) -> None:
        from mlflow.entities import Param

        existing: dict[str, str] = dict(self.client.get_run(self.run_id).data.params)
        raise_on_param_conflicts(self.run_id, existing, params)
        new = [Param(key, str(value)) for key, value in params.items() if key not in existing]
        for start in range(0, len(new), _PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=new[start : start + _PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now_ms = int(time.time() * 1000)
        rows = [Metric(key, float(value), now_ms, int(step)) for key, value in metrics.items()]
        for start in range(0, len(rows), _METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=rows[start : start + _METRICS_PER_BATCH])

    def logged_steps(self, key: str) -> set[int]:
        return {int(metric.step) for metric in self.client.get_metric_history(self.run_id, key)}

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        artifact_names(path, artifact_path)  # raises FileNotFoundError naming a missing path
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path or path.name)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_model(
        self,
        model: torch.nn.Module,
        example_inputs: dict[str, torch.Tensor],
        name: str,
        *,
        step: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """``mlflow.pytorch.log_model`` of ``model`` (pickled, on the CPU) with a signature from the example.

        The signature leaves the batch dimension free; the window length stays the example's, because a TAGF
        model's cross-attention keys are sized to its window length (other modules pickle just as well).
        The logged model carries the run's params and ``tags`` and is linked to the run's metrics at ``step``
        (the best epoch), so its page shows the epoch it holds. Loadable with
        ``mlflow.pytorch.load_model(f"models:/{model_id}")`` or ``runs:/{run_id}/{name}`` where tagf is installed.
        """
        import copy

        import mlflow.pytorch
        import torch

        if any(tensor.device.type != "cpu" for tensor in [*model.parameters(), *model.buffers()]):
            model = copy.deepcopy(model).cpu()  # loadable on a machine without the training device
        inputs = {key: value.detach().cpu() for key, value in example_inputs.items()}
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                output = model(**inputs)
        finally:
            model.train(was_training)
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"log_model needs a model returning one tensor, got {type(output).__name__}")
        signature = _signature({k: v.numpy() for k, v in inputs.items()}, output.numpy())
        # Created through our client so it lands in our experiment: with no active run, the fluent
        # log_model would put the model in whatever experiment MLflow's global state points at.
        params = dict(self.client.get_run(self.run_id).data.params)
        logged = self.client.create_logged_model(
            self.session.experiment_id,
            name=name,
            source_run_id=self.run_id,
            params=params,
            tags={key: str(value) for key, value in (tags or {}).items()},
        )
        with self.session.global_tracking_uri():
            mlflow.pytorch.log_model(
                model,
                name=name,
                # the default (pt2) export fixes the sequence length of the example
                serialization_format="pickle",
                # explicit requirements: MLflow would otherwise infer them, which is slow and may need a network
                pip_requirements=_pip_requirements(),
                signature=signature,
                model_id=logged.model_id,
                run_id=self.run_id,
                step=step,
            )
        self._logged_model_id = logged.model_id

    def register_model(self, name: str, score: float) -> bool:
        """A new version of registered model ``name`` from the model logged last (tagged with its ``val_ccc``);
        the alias ``champion`` moves to it when ``score`` beats the current champion's ``val_ccc``. On a local
        store the store's lock makes comparing and moving the alias one step."""
        from mlflow.exceptions import MlflowException

        if self._logged_model_id is None:
            raise RuntimeError("register_model needs a model logged first (log_model)")
        with store_lock(self.session.tracking_uri):
            try:
                self.client.create_registered_model(name)
            except MlflowException as e:
                if e.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            with self.session.global_tracking_uri():  # MLflow resolves the models:/ source through it
                version = self.client.create_model_version(
                    name,
                    source=f"models:/{self._logged_model_id}",
                    run_id=self.run_id,
                    tags={"val_ccc": repr(float(score))},
                    model_id=self._logged_model_id,
                )
            try:
                current = float(self.client.get_model_version_by_alias(name, CHAMPION).tags.get("val_ccc", "-inf"))
            except MlflowException:
                current = float("-inf")  # no champion yet
            if score <= current:
                return False
            self.client.set_registered_model_alias(name, CHAMPION, str(version.version))
            return True

    def log_dataset(self, name: str, digest: str, source: str) -> None:
        """Record the dataset as a run input; MLflow keeps 36 characters of digest, the profile keeps all of it."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(
            name=name,
            digest=digest[:_DATASET_DIGEST_LEN],
            source_type="local",
            source=json.dumps({"uri": source}),
            profile=json.dumps({"digest": digest}),
        )
        self.client.log_inputs(
            self.run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])]
        )

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])

    def log_table(self, columns: Mapping[str, Sequence[object]], artifact_file: str) -> None:
        """``columns`` (name → one value per row) as the MLflow table ``artifact_file`` (``.json``), which the UI
        shows as a table; logging it again replaces it.

        ``MlflowClient.log_table`` appends the rows to a table already there, so it logs only the first version
        (it also marks the file as a table for the UI); a later one overwrites the file in the same format.
        """
        import tempfile

        folder, _, file_name = artifact_file.rpartition("/")
        present = {item.path for item in self.client.list_artifacts(self.run_id, folder or None)}
        if artifact_file not in present:
            table = {key: list(values) for key, values in columns.items()}
            self.client.log_table(self.run_id, data=table, artifact_file=artifact_file)
            return
        rows = [list(row) for row in zip(*columns.values(), strict=True)]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / file_name
            path.write_text(json.dumps({"columns": list(columns), "data": rows}))
            self.client.log_artifact(self.run_id, str(path), folder or None)

    def close(self, status: RunStatus = "FINISHED") -> None:
        if not self._set_status_on_close:
            return
        self.client.set_terminated(self.run_id, status)
        if self.parent_id is not None:
            try:
                self.session.settle_parent(self.parent_id)
            except Exception:  # the run's own status is written: a parent left behind is settled again later
                log.warning("could not settle the status of parent run %s", self.parent_id, exc_info=True)


def _signature(inputs: dict[str, Any], output: Any) -> Any:
    """``infer_signature`` with the batch dimension (the first) of every tensor set free."""
    from mlflow.models import infer_signature
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    inferred = infer_signature(inputs, output)

    def free(schema: Schema) -> Schema:
        specs = [spec for spec in schema.inputs if isinstance(spec, TensorSpec)]
        return Schema(
            [
                TensorSpec(spec.type, tuple(-1 if i == 0 else d for i, d in enumerate(spec.shape)), spec.name)
                for spec in specs
            ]
        )

    return ModelSignature(inputs=free(inferred.inputs), outputs=free(inferred.outputs))


def _pip_requirements() -> list[str]:
    import torch

    requirements = [f"torch=={torch.__version__.split('+')[0]}"]
    try:
        requirements.append(f"tagf=={importlib.metadata.version('tagf')}")
    except importlib.metadata.PackageNotFoundError:
        requirements.append("tagf")
    return requirements
