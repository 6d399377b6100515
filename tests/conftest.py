"""What the tests share, written once: one tiny synthetic release and its preprocessed arrays (generated once per
session, copied by a test that changes them), one tiny run config, the CLI invoked in-process, helper modules
loaded by path, and a real MLflow server.

Releases made elsewhere are other on purpose: tagf_synth's own tests vary the generator's arguments, the Ray
test needs 12 trials (two folds with validation trials), and tests/learning uses an independent generator.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tagf_synth import SynthReport, generate_dataset

SYNTH_TRIALS = 7
SYNTH_SECONDS = 3.0


@pytest.fixture(scope="session")
def synth_release(tmp_path_factory: pytest.TempPathFactory) -> SynthReport:
    """A 7-trial, 3-second synthetic release. Read-only: copy it with ``release_copy`` to change it."""
    return generate_dataset(
        tmp_path_factory.mktemp("synth") / "raw", trials=SYNTH_TRIALS, seconds=SYNTH_SECONDS, seed=5
    )


@pytest.fixture()
def release_copy(synth_release: SynthReport, tmp_path: Path) -> Path:
    target = tmp_path / "raw"
    shutil.copytree(synth_release.out, target)
    return target


@pytest.fixture(scope="session")
def processed_release(synth_release: SynthReport, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``synth_release`` preprocessed once (7 trials). Read-only: training writes its embedding cache into the
    processed folder, so a test that trains copies it with ``processed_copy``."""
    from preprocessing import preprocess_release

    out = tmp_path_factory.mktemp("processed") / "processed"
    report = preprocess_release(synth_release.out, out, workers=2)
    assert not report.failed, [o.message for o in report.failed]
    return out


@pytest.fixture(scope="module")
def processed_copy(processed_release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A module's own copy of ``processed_release``, in a fresh folder that also holds its runs and stores."""
    root = tmp_path_factory.mktemp("workspace")
    shutil.copytree(processed_release, root / "processed")
    return root / "processed"


TINY_RUN = """
[data]
window_len = 16
hop_len = 8

[model]
video_tcn_channels = [16, 16]
audio_tcn_channels = [8, 8]

[train]
backbone = "frozen"
batch_size = 4
max_epochs = {max_epochs}
min_epochs = 1
learning_rate = 0.001

[tracking]
artifact_root = "{artifact_root}"
"""


@pytest.fixture(scope="session")
def write_run_config() -> Callable[[Path, int], Path]:
    """``write(folder, max_epochs)`` → ``folder/run.toml``: a tiny model and schedule that train in seconds on the
    synthetic data; a local store puts its artifacts in ``folder/mlruns``."""

    def write(folder: Path, max_epochs: int) -> Path:
        path = folder / "run.toml"
        path.write_text(TINY_RUN.format(max_epochs=max_epochs, artifact_root=folder / "mlruns"))
        return path

    return write


@pytest.fixture(scope="session")
def invoke() -> Callable[..., str]:
    """``invoke(*args)``: run ``tagf <args>`` in this process, assert it succeeded, return its output."""
    from typer.testing import CliRunner

    from tagf_cli.app import app

    runner = CliRunner()

    def run(*args: str | Path) -> str:
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output + repr(result.exception)
        return result.output

    return run


@pytest.fixture(scope="session")
def load_test_module() -> Callable[[Path], ModuleType]:
    """``load(path)``: import a helper module of the tests by its path, once (tests are not a package)."""

    def load(path: Path) -> ModuleType:
        name = "tagf_tests_" + "_".join(path.resolve().relative_to(Path(__file__).parent).with_suffix("").parts)
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` on loopback (sqlite backend, proxied artifacts), as a team would share one."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow = Path(sys.executable).parent / "mlflow"
    log = (root / "server.log").open("w")
    server = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts")],
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(
                    f"mlflow server exited with {server.returncode}: {(root / 'server.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"mlflow server did not answer within 120 s: {(root / 'server.log').read_text()[-2000:]}"
                    )
                time.sleep(0.25)
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


class Mounts:
    """Small file systems for the tests of full and read-only disks (``mount``, so root on Linux)."""

    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def _mount(self, *arguments: str) -> None:
        result = subprocess.run(["mount", *arguments], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a test file system here (needs root on Linux): {result.stderr.strip()}")
        self.mounted.append(Path(arguments[-1]))

    def tmpfs(self, folder: Path, size_bytes: int, *, read_only: bool = False) -> Path:
        """An empty tmpfs of ``size_bytes`` at ``folder`` (read-only, when asked)."""
        folder.mkdir(parents=True, exist_ok=True)
        options = f"size={size_bytes}" + (",ro" if read_only else "")
        self._mount("-t", "tmpfs", "-o", options, "tagf-test", str(folder))
        return folder

    def read_only_view(self, source: Path, folder: Path) -> Path:
        """``source`` seen read-only at ``folder`` (a bind mount remounted ro)."""
        folder.mkdir(parents=True, exist_ok=True)
        self._mount("--bind", str(source), str(folder))
        self._mount("-o", "remount,bind,ro", str(folder))
        return folder

    def fill(self, folder: Path, leave_bytes: int) -> None:
        """Fill the file system of ``folder`` until about ``leave_bytes`` are free."""
        free = shutil.disk_usage(folder).free - leave_bytes
        with (folder / ".filler").open("wb") as handle:
            handle.write(b"\0" * max(0, free))

    def release(self) -> None:
        for folder in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        self.mounted.clear()


@pytest.fixture()
def mounts() -> Iterator[Mounts]:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a test file system needs root on Linux")
    found = Mounts()
    try:
        yield found
    finally:
        found.release()
