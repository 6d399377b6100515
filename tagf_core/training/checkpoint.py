"""Checkpoints: plain state dicts written atomically, read with ``weights_only=True``.

The reference pickles its whole Trainer (GPU tensors, >1 GB, needs the same code and a GPU to load,
ref §3.7). Here a checkpoint holds what a resume needs and nothing that runs code: the trained weights,
the optimizer, the schedule and release state, early stopping, the epoch history, the RNG states and the
MLflow run id (``TrainingState``), and the best epoch's record (``best_record``: weights, config and run spec
that rebuild the model). ``best.pt`` beside it is a copy of that record, written after the checkpoint; a resume
writes it again from the checkpoint, so no kill can leave a best.pt that disagrees with the state resumed.
"""

from __future__ import annotations

import io
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tagf_core.atomic import atomic_write
from tagf_core.config import TagfConfig
from tagf_core.errors import TagfError
from tagf_core.torch_files import load_torch  # the loop and prediction import it from here too
from tagf_core.training.run import RunSpec

CHECKPOINT_FORMAT = "tagf-checkpoint"
CHECKPOINT_VERSION = 2
"""2: the best record is inside the checkpoint. 1 (read too): it was in best.pt only."""
READABLE_VERSIONS = (1, 2)


@dataclass
class TrainingState:
    """Everything of a run besides the weights, optimizer, schedule and release that a resume must restore."""

    next_epoch: int = 0
    best_ccc: float = float("-inf")
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    """One row per epoch: the columns of training_log.csv (``LOG_COLUMNS`` in loop.py)."""
    stop_reason: str = ""
    run_id: str = ""
    """The MLflow run this training is logged to (also in run.json, written before the first epoch)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainingState:
        return cls(**{k: saved[k] for k in asdict(cls()) if k in saved})

    def summary(self, **run: object) -> dict[str, object]:
        """summary.json: ``run`` (stamp, fold, emotion, model, backbone) and how the run ended."""
        return {
            **run, "best_val_ccc": self.best_ccc, "best_epoch": self.best_epoch, "epochs": self.next_epoch,
            "stop_reason": self.stop_reason, "run_id": self.run_id,
        }  # fmt: skip


def save_torch(path: Path, payload: object) -> None:
    """``torch.save`` through a temporary file and a rename: a kill leaves the old file or the new one.

    Raises:
        TagfError: the file cannot be written (no space, read-only); the old file, if any, is left as it was.
    """
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        atomic_write(path, buffer.getvalue())
    except OSError as e:
        raise TagfError(f"{path}: cannot write ({e.strerror or e}); the previous version is kept") from e


def best_record(
    cfg: TagfConfig, spec: RunSpec, weights: dict[str, torch.Tensor], epoch: int, val_ccc: float
) -> dict[str, Any]:
    """best.pt: the best epoch's trained weights, with the config and spec that rebuild the model alone
    (as nanoGPT's checkpoint carries ``model_args``): ``TagfConfig.model_validate(record["config"])``."""
    return {
        "model": weights, "epoch": epoch, "val_ccc": val_ccc,
        "config": cfg.model_dump(mode="json"), "spec": asdict(spec),
    }  # fmt: skip


def capture_rng() -> dict[str, Any]:
    """Python, numpy and torch RNG states, as tensors and plain values (loadable with weights_only)."""
    version, python_state, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "python": [version, list(python_state), gauss],
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, python_state, gauss = state["python"]
    random.setstate((version, tuple(python_state), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    save_torch(path, {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload})


def load_checkpoint(path: Path) -> dict[str, Any]:
    checkpoint = load_torch(path, "checkpoint")
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise TagfError(f"{path}: not a tagf checkpoint")
    if checkpoint.get("version") not in READABLE_VERSIONS:
        raise TagfError(
            f"{path}: checkpoint version {checkpoint.get('version')!r}; this tagf reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    return checkpoint
