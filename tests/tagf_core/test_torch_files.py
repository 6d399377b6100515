"""A .pt/.pth file is read as plain data; each failure is one line naming the file, never torch's advice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tagf_core.errors import TagfError
from tagf_core.model.reference_weights import load_reference_checkpoint
from tagf_core.training.checkpoint import load_checkpoint, load_torch


class _RunsCode:
    """Unpickling this would call os.system: weights_only must refuse it."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, ("echo pwned",)


def test_a_file_with_other_objects_than_tensors_is_refused_without_torchs_advice(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "payload": _RunsCode()}, path)
    with pytest.raises(TagfError) as refused:
        load_checkpoint(path)
    message = str(refused.value)
    assert message == (
        f"{path}: checkpoint holds objects other than tensors ({os.system.__module__}.system); not loaded, for safety"
    )
    assert "weights_only" not in message and "\n" not in message


def test_a_weight_file_with_other_objects_than_tensors_is_refused_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "model_state_dict0.61.pth"
    torch.save({"weights": _RunsCode()}, path)
    with pytest.raises(
        TagfError, match=r"^\S+model_state_dict0\.61\.pth: weight file holds objects other than tensors"
    ):
        load_reference_checkpoint(path)


def test_damaged_and_missing_files_are_one_line_naming_them(tmp_path: Path) -> None:
    not_torch = tmp_path / "notes.pt"
    not_torch.write_bytes(b"not a checkpoint")
    with pytest.raises(TagfError) as garbage:
        load_torch(not_torch, "best weights")
    assert (
        str(garbage.value)
        == f"{not_torch}: unreadable best weights (not a PyTorch file of tensors: Unsupported operand 110)"
    )
    truncated = tmp_path / "best.pt"
    torch.save({"w": torch.zeros(4)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(TagfError) as damaged:
        load_torch(truncated, "best weights")
    assert str(damaged.value).startswith(f"{truncated}: unreadable best weights (RuntimeError: ")
    assert "\n" not in str(damaged.value)
    with pytest.raises(TagfError, match=r"absent\.pt: best weights not found$"):
        load_torch(tmp_path / "absent.pt", "best weights")
