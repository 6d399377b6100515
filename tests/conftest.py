"""Shared synthetic releases: generated once per session, copied per test that changes them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

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
