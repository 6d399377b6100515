"""Opening a local SQLite store: race-free when new, one line when its folder is missing or its file is no store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagf_cli.app import app
from tagf_core.errors import TagfError
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


def test_a_corrupt_sqlite_store_is_one_line_naming_the_file(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    store.write_bytes(os.urandom(4096))
    with pytest.raises(TagfError) as error:
        MlflowSession(f"sqlite:///{store}", "tagf", tmp_path / "mlruns")
    message = str(error.value)
    assert message.startswith(f"{store}: not a readable MLflow store (file is not a database)")
    assert "\n" not in message


def test_a_sqlite_store_in_a_missing_folder_is_refused_naming_the_folder(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "runs"
    with pytest.raises(TagfError) as error:
        MlflowSession(f"sqlite:///{missing / 'mlflow.db'}", "tagf", tmp_path / "mlruns")
    assert str(error.value).startswith(f"{missing}: no such folder for the MLflow store mlflow.db")
    assert not (tmp_path / "typo").exists()


def test_the_default_relative_store_opens_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    session = MlflowSession("sqlite:///mlflow.db", "tagf", tmp_path / "mlruns")
    assert session.parent_run("here") and (tmp_path / "mlflow.db").is_file()


@pytest.mark.parametrize("case", ["corrupt", "missing folder"])
def test_tagf_collect_on_a_bad_store_is_one_error_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    store = tmp_path / "mlflow.db" if case == "corrupt" else tmp_path / "nowhere" / "mlflow.db"
    if case == "corrupt":
        store.write_bytes(b"SQLite format 2\0" + os.urandom(2048))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    result = CliRunner().invoke(app, ["collect", "--stamp", "s", "--output-root", str(tmp_path / "outputs")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {store if case == 'corrupt' else store.parent}: ")
