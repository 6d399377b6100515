"""Datasets shared by the synth tests: generated once per test session (per xdist worker)."""

from __future__ import annotations

from typing import Any

import pytest

from tagf_synth import SynthReport, generate_dataset


@pytest.fixture(scope="session")
def layout_args() -> dict[str, Any]:
    """Seven short trials: the smallest N with every special case (pair, cascade-only trial, AVI, silent
    video) and every partition."""
    return {"trials": 7, "seconds": 2.5, "seed": 3}


@pytest.fixture(scope="session")
def layout_dataset(tmp_path_factory: pytest.TempPathFactory, layout_args: dict[str, Any]) -> SynthReport:
    return generate_dataset(tmp_path_factory.mktemp("layout") / "affwild2", **layout_args)


@pytest.fixture(scope="session")
def signal_dataset(tmp_path_factory: pytest.TempPathFactory) -> SynthReport:
    """Four longer trials (pair, cascade-only, AVI): enough frames per trial to measure the signal."""
    return generate_dataset(tmp_path_factory.mktemp("signal") / "affwild2", trials=4, seconds=10.0, seed=5)
