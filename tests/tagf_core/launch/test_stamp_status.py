"""MLflow statuses tell the truth: the parent follows its children, and a child whose process died is KILLED."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tagf_core.launch.stamp_status import settle_stamp
from tagf_core.tracking.mlflow_tracker import MlflowSession
from tagf_core.tracking.tracker import parent_status, tracked


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> MlflowSession:
    store = tmp_path_factory.mktemp("mlflow")
    return MlflowSession(f"sqlite:///{store}/mlflow.db", "tagf", store / "mlruns")


def _status(session: MlflowSession, run_id: str) -> str:
    return str(session.client.get_run(run_id).info.status)


@pytest.mark.parametrize(
    ("children", "parent"),
    [
        ([], None),
        (["FINISHED", "FINISHED"], "FINISHED"),
        (["FINISHED", "KILLED"], "KILLED"),
        (["KILLED", "FAILED", "FINISHED"], "FAILED"),
        (["FAILED", "RUNNING"], "RUNNING"),
        (["SCHEDULED", "FINISHED"], "RUNNING"),
    ],
)
def test_the_parent_status_rule(children: list[str], parent: str | None) -> None:
    assert parent_status(children) == parent


def test_the_parent_follows_its_children_as_they_start_and_end(session: MlflowSession) -> None:
    parent = session.parent_run("follow")
    assert _status(session, parent) == "FINISHED"  # no child yet: nothing unfinished

    first = session.child(parent, "fold0-valence", {})
    assert _status(session, parent) == "RUNNING"
    with tracked(first):
        pass
    assert _status(session, parent) == "FINISHED"

    killed = session.child(parent, "fold0-arousal", {})
    with pytest.raises(KeyboardInterrupt), tracked(killed):
        raise KeyboardInterrupt
    assert _status(session, parent) == "KILLED"

    crashed = session.child(parent, "fold1-valence", {})
    assert _status(session, parent) == "RUNNING"
    with pytest.raises(RuntimeError), tracked(crashed):
        raise RuntimeError("boom")
    assert _status(session, parent) == "FAILED"

    with tracked(session.child(parent, "fold1-valence", {})):  # started again (--overwrite): the latest counts
        pass
    assert _status(session, parent) == "KILLED"

    with tracked(session.child(parent, "fold0-arousal", {}, run_id=killed.run_id)):  # resumed to its end
        pass
    assert _status(session, parent) == "FINISHED"


def test_a_run_that_ended_before_its_child_existed_counts_until_it_has_one(session: MlflowSession) -> None:
    parent = session.parent_run("failed-start")
    with tracked(session.child(parent, "fold0-valence", {})):
        pass
    session.record_failed_start(parent, "fold0-arousal", "FAILED")
    assert _status(session, parent) == "FAILED"
    with tracked(session.child(parent, "fold0-arousal", {})):  # started right this time
        pass
    assert _status(session, parent) == "FINISHED"


# A training process as far as MLflow and the run folder see it: it holds the run, has opened its child run and
# written run.json, and then trains (sleeps) until it is killed.
HOLD_A_RUN = """
import sys, time
from pathlib import Path
from tagf_core.tracking.mlflow_tracker import MlflowSession
from tagf_core.training.run import RunPaths, RunSpec, hold_run, write_run_record
uri, root, stamp, emotion = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
session = MlflowSession(uri, "tagf", root / "mlruns")
spec = RunSpec(stamp, 0, emotion)
paths = RunPaths.of(root / "outputs", spec)
with hold_run(paths):
    paths.folder.mkdir(parents=True, exist_ok=True)
    tracker = session.child(session.parent_run(stamp), spec.name, {})
    write_run_record(paths, spec, tracker.run_id, debug=False, launch="test")
    time.sleep(600)
"""


def start_holding(uri: str, root: Path, stamp: str, emotion: str) -> tuple[subprocess.Popen[bytes], Path]:
    """A process holding run ``<stamp>/fold0-<emotion>`` as training does; returns it once run.json is there."""
    process = subprocess.Popen([sys.executable, "-c", HOLD_A_RUN, uri, str(root), stamp, emotion])
    record = root / "outputs" / stamp / f"fold0-{emotion}" / "run.json"
    deadline = time.monotonic() + 120
    while not record.exists():
        assert process.poll() is None and time.monotonic() < deadline, "the holding process did not start"
        time.sleep(0.05)
    return process, record


def test_a_child_left_running_by_a_dead_process_is_marked_killed_a_live_one_is_not(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    session = MlflowSession(uri, "tagf", tmp_path / "mlruns")
    alive, _ = start_holding(uri, tmp_path, "held", "valence")
    dead, _ = start_holding(uri, tmp_path, "held", "arousal")
    try:
        os.kill(dead.pid, signal.SIGKILL)
        dead.wait()
        parent = session.find_parent_run("held")
        assert parent is not None
        children = {run.info.run_name: run.info.run_id for run in session.children(parent)}
        assert _status(session, children["fold0-arousal"]) == "RUNNING"  # what a SIGKILL leaves behind

        assert settle_stamp(session, "held", tmp_path / "outputs" / "held") == "RUNNING"
        assert _status(session, children["fold0-arousal"]) == "KILLED"
        assert _status(session, children["fold0-valence"]) == "RUNNING"  # its process is alive
    finally:
        alive.kill()
        alive.wait()
    assert settle_stamp(session, "held", tmp_path / "outputs" / "held") == "KILLED"
    assert {_status(session, run_id) for run_id in children.values()} == {"KILLED"}
    assert _status(session, parent) == "KILLED"


def test_a_running_child_of_another_output_root_is_left_as_it_is(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    session = MlflowSession(uri, "tagf", tmp_path / "mlruns")
    parent = session.parent_run("elsewhere")
    child = session.child(parent, "fold0-valence", {})  # no run folder here: cannot tell that it is dead
    assert settle_stamp(session, "elsewhere", tmp_path / "outputs" / "elsewhere") == "RUNNING"
    assert _status(session, child.run_id) == "RUNNING"
