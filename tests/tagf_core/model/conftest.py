"""Fixtures for the model tests: tiny windows, and state dicts shaped like the reference's files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

# copies of the reference's key tables (shared/reference/*.tsv), so the tests need nothing outside the repo
KEY_TABLES = Path(__file__).parent / "reference_keys"


def read_key_table(name: str) -> dict[str, tuple[int, ...]]:
    """The reference key table ``name`` (e.g. lfan_state_dict.tsv) as {key: shape}, in file order."""
    table: dict[str, tuple[int, ...]] = {}
    for line in (KEY_TABLES / name).read_text().splitlines()[1:]:
        key, shape, _dtype = line.split("\t")
        table[key] = () if shape == "scalar" else tuple(int(n) for n in shape.split("x"))
    return table


def state_dict_like(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Plausible tensors with the keys and shapes of a reference file (aliased TCN keys share tensors)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in read_key_table(name).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    for key in state:
        for alias, original in ((".net.0.", ".conv1."), (".net.4.", ".conv2.")):
            if alias in key:
                state[key] = state[key.replace(alias, original)]
    return state


@pytest.fixture(scope="session")
def reference_lfan(load_test_module: Callable[[Path], ModuleType]) -> ModuleType:
    """The independent re-derivation of the reference LFAN (tests/…/reference_lfan.py), the equality oracle."""
    return load_test_module(Path(__file__).parent / "reference_lfan.py")


@pytest.fixture()
def key_table() -> Callable[[str], dict[str, tuple[int, ...]]]:
    return read_key_table


@pytest.fixture()
def reference_like() -> Callable[..., dict[str, torch.Tensor]]:
    return state_dict_like
