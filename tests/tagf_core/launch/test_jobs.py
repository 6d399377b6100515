"""The fan-out's pieces that need no cluster: paths made absolute, errors in one line, refused set-ups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tagf_core.config import load_config
from tagf_core.errors import TagfError
from tagf_core.launch.job import FoldJob, absolute_config, run_fold_job
from tagf_core.launch.jobs import launch_runs
from tagf_core.launch.ray_executor import check_cluster, check_ray_address, task_resources, unwrap_task_error
from tagf_core.tracking.mlflow_tracker import TrackingTarget, absolute_tracking_uri
from tagf_core.training.run import RunSpec
from tagf_core.training.setup import RunData
from tagf_synth import SynthReport


def test_relative_sqlite_stores_become_absolute_other_uris_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert absolute_tracking_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert absolute_tracking_uri("sqlite:///runs/m.db?timeout=5") == f"sqlite:///{tmp_path / 'runs/m.db'}?timeout=5"
    for uri in ("sqlite:////abs/m.db", "http://tracking:5000", "sqlite:///:memory:", "databricks"):
        assert absolute_tracking_uri(uri) == uri


def test_every_path_of_the_config_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w").mkdir()
    cfg = absolute_config(
        load_config(overrides={"data": {"processed_root": "p"}, "train": {"output_root": "o", "weights_dir": "w"}})
    )
    assert cfg.data.processed_root == tmp_path / "p"
    assert cfg.train.output_root == tmp_path / "o" and cfg.train.weights_dir == tmp_path / "w"
    assert cfg.tracking.artifact_root.is_absolute()
    assert absolute_config(load_config()).train.weights_dir is None


class _RayError(Exception):
    def __init__(self, cause: BaseException | None) -> None:
        super().__init__("ray.exceptions.RayTaskError(...)\nTraceback ...\n  many lines")
        self.cause = cause


def test_a_task_error_reaches_the_user_as_one_line() -> None:
    bad = TagfError("processed/manifest.json: not found")
    assert unwrap_task_error(_RayError(bad)) is bad
    assert (
        str(unwrap_task_error(_RayError(RuntimeError("CUDA out of memory\nmore"))))
        == "RuntimeError: CUDA out of memory"
    )
    assert str(unwrap_task_error(_RayError(None))) == "_RayError: ray.exceptions.RayTaskError(...)"


class _FakeRay:
    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self._nodes = nodes

    def nodes(self) -> list[dict[str, Any]]:
        return self._nodes

    def cluster_resources(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for node in self._nodes:
            for key, value in node["Resources"].items():
                total[key] = total.get(key, 0) + value
        return total


def _job(uri: str, tmp_path: Path) -> FoldJob:
    cfg = load_config(overrides={"train": {"output_root": tmp_path / "outputs"}})
    target = TrackingTarget(uri, "tagf", tmp_path / "mlruns")
    data = RunData(tmp_path, {})
    return FoldJob(cfg, RunSpec("s", 0, "valence"), data, target, "parent", {}, False, False, False, "launch")


def test_a_cluster_of_several_machines_needs_a_tracking_server(tmp_path: Path) -> None:
    two = _FakeRay([{"Alive": True, "Resources": {"CPU": 8}}, {"Alive": True, "Resources": {"CPU": 8}}])
    with pytest.raises(TagfError, match="2 machines.*sqlite:////x/mlflow.db.*MLFLOW_TRACKING_URI"):
        check_cluster(two, [_job("sqlite:////x/mlflow.db", tmp_path)])
    check_cluster(two, [_job("http://tracking:5000", tmp_path)])
    one = _FakeRay([{"Alive": True, "Resources": {"CPU": 8}}, {"Alive": False, "Resources": {"CPU": 8}}])
    check_cluster(one, [_job("sqlite:////x/mlflow.db", tmp_path)])  # one machine may share a local store


def test_a_run_task_asks_for_one_gpu_where_there_are_gpus_else_one_cpu() -> None:
    gpus = _FakeRay([{"Alive": True, "Resources": {"CPU": 16, "GPU": 2}}])
    assert task_resources(gpus) == ({"num_gpus": 1, "num_cpus": 1}, {"num_gpus": 1, "num_cpus": 1})
    cpus = _FakeRay([{"Alive": True, "Resources": {"CPU": 4}}, {"Alive": True, "Resources": {"CPU": 12}}])
    assert task_resources(cpus) == ({"num_cpus": 12}, {"num_cpus": 1})  # the cache task alone takes a whole machine


def test_a_job_on_a_machine_without_the_shared_output_root_fails_naming_it(tmp_path: Path) -> None:
    job = _job("sqlite:////x/mlflow.db", tmp_path)
    with pytest.raises(TagfError, match=r"outputs/s: not visible on .*shared storage"):
        run_fold_job(job)


def test_a_fold_without_validation_trials_is_refused_before_any_tracking(
    synth_release: SynthReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from preprocessing import preprocess_release

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert not preprocess_release(synth_release.out, tmp_path / "processed", workers=1).failed  # 7 trials
    cfg = load_config(
        overrides={"data": {"processed_root": tmp_path / "processed"}, "train": {"output_root": tmp_path / "out"}}
    )
    store = tmp_path / "never.db"
    with pytest.raises(TagfError, match="fold 1 has"):
        launch_runs(
            cfg.model_copy(update={"tracking": cfg.tracking.model_copy(update={"tracking_uri": f"sqlite:///{store}"})}),
            "s", [0, 1], ["valence"], resume=False, overwrite=False, debug=False, executor="ray",
            progress=lambda name: pytest.fail("no run may start"), on_event=lambda event: None,
        )  # fmt: skip
    assert not store.exists() and not (tmp_path / "out").exists()


def test_a_ray_address_where_nothing_listens_fails_at_once_naming_it() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    with pytest.raises(TagfError, match=rf"Ray cluster 127.0.0.1:{port} does not answer.*ray start --head"):
        check_ray_address(f"127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(TagfError, match="is not host:port"):
        check_ray_address("head-node")
    check_ray_address(None)
    check_ray_address("auto")
