"""Opening a local SQLite store: race-free when new."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tagf_core.tracking.mlflow_tracker import MlflowSession

# One launch as `tagf train` opens the store: the session, the stamp's parent, a child run. It waits for the test
# to say go, so that both processes open the new store at the same instant.
OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
from tagf_core.tracking.mlflow_tracker import MlflowSession
uri, folder, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
(folder / f"ready-{name}").touch()
while not (folder / "go").exists():
    time.sleep(0.0005)
session = MlflowSession(uri, "tagf", folder / "mlruns")
parent = session.parent_run("together")
session.child(parent, name, {}).close("FINISHED")
print(parent)
"""


@pytest.mark.parametrize("attempt", range(3))
def test_two_launches_on_a_new_sqlite_store_both_succeed_under_one_parent(tmp_path: Path, attempt: int) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    names = ["fold0-valence", "fold0-arousal"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT_ONCE, uri, str(tmp_path), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name in names
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{name}").exists() for name in names):
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes), "a process never got ready"
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    assert len({stdout.strip() for stdout, _ in outputs}) == 1  # one parent run for the stamp
    session = MlflowSession(uri, "tagf", tmp_path / "mlruns")
    parent = outputs[0][0].strip()
    children = session.client.search_runs([session.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted(run.info.run_name for run in children) == sorted(names)
    assert not list(tmp_path.glob(".*.lock"))  # the store's lock is gone with its holders


def test_the_default_relative_store_opens_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    session = MlflowSession("sqlite:///mlflow.db", "tagf", tmp_path / "mlruns")
    assert session.parent_run("here") and (tmp_path / "mlflow.db").is_file()
