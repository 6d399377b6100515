"""What the CLI training tests share: a tiny model and schedule that train in seconds on the synthetic data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

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
    """``write(folder, max_epochs)`` → ``folder/run.toml``; a local store puts its artifacts in ``folder/mlruns``."""

    def write(folder: Path, max_epochs: int) -> Path:
        path = folder / "run.toml"
        path.write_text(TINY_RUN.format(max_epochs=max_epochs, artifact_root=folder / "mlruns"))
        return path

    return write
