"""Shared synthetic releases: generated once per session, copied per test that changes them."""

from __future__ import annotations

import shutil
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
