"""Fixtures for the learning tests: a release written by the independent generator (independent_release.py).

That generator shares no code with ``tagf_synth``, so what a model learns from it is evidence about the
training code, not about a generator tuned alongside it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from preprocessing.runner import PreprocessReport, preprocess_release

# the default small set: 7 train + 2 validation trials of 250 frames (10–12.5 s each)
DEFAULT_SET = {"train_trials": 7, "validate_trials": 2, "frames": 250, "seed": 0}


@pytest.fixture(scope="session")
def release_generator(load_test_module: Callable[[Path], ModuleType]) -> ModuleType:
    """The independent generator module (``write_release``, ``Release``, and its building blocks)."""
    return load_test_module(Path(__file__).parent / "independent_release.py")


@pytest.fixture(scope="session")
def independent_release(tmp_path_factory: pytest.TempPathFactory, release_generator: ModuleType) -> Any:
    """The default small independent release (``DEFAULT_SET``), written once per session: a ``Release``
    (``out``, ``train``, ``validate``, ``labels``, ``fps``). Read-only."""
    return release_generator.write_release(tmp_path_factory.mktemp("independent") / "raw", **DEFAULT_SET)


@pytest.fixture(scope="session")
def independent_processed(tmp_path_factory: pytest.TempPathFactory, independent_release: Any) -> PreprocessReport:
    """``independent_release`` run through ``tagf preprocess`` (2 workers): the ``PreprocessReport``. Read-only."""
    return preprocess_release(independent_release.out, tmp_path_factory.mktemp("independent") / "processed", workers=2)
