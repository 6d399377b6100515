"""Where a fold run lives on disk, and how it is named."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from tagf_core.config import TagfConfig, describe_validation_error, read_toml
from tagf_core.data.folds import check_fold
from tagf_core.errors import TagfError

Emotion = Literal["valence", "arousal"]
EMOTIONS: tuple[Emotion, ...] = ("valence", "arousal")
ModelName = Literal["tagf", "concat", "ridge", "ridge-video", "ridge-audio"]
MODELS: tuple[ModelName, ...] = ("tagf", "concat", "ridge", "ridge-video", "ridge-audio")
"""What a run trains: TAGF (the default), or a baseline to hold it against on the same fold —
concat: the TCNs and head of TAGF on the concatenated streams, without cross-attention or gate;
ridge, ridge-video, ridge-audio: a per-frame linear probe on the frozen-backbone embeddings of both
modalities, the face's or the voice's (closed form, seconds)."""
PROBE_MODALITIES: dict[str, tuple[Literal["video", "audio"], ...]] = {
    "ridge": ("video", "audio"),
    "ridge-video": ("video",),
    "ridge-audio": ("audio",),
}
_STAMP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_stamp(stamp: str) -> str:
    if not _STAMP.fullmatch(stamp):
        raise TagfError(
            f"stamp {stamp!r} is not allowed: use 1–100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return stamp


@dataclass(frozen=True)
class RunSpec:
    """One training run: a stamp (the experiment's name), a fold, an emotion and the model trained."""

    stamp: str
    fold: int
    emotion: Emotion
    model: ModelName = "tagf"

    def __post_init__(self) -> None:
        check_stamp(self.stamp)
        check_fold(self.fold)
        if self.emotion not in EMOTIONS:
            raise TagfError(f"emotion {self.emotion!r} is not one of {', '.join(EMOTIONS)}")
        if self.model not in MODELS:
            raise TagfError(f"model {self.model!r} is not one of {', '.join(MODELS)}")

    @property
    def name(self) -> str:
        """``fold<K>-<emotion>`` for TAGF, ``fold<K>-<emotion>-<model>`` for a baseline."""
        return f"fold{self.fold}-{self.emotion}" + ("" if self.model == "tagf" else f"-{self.model}")

    @property
    def probe(self) -> bool:
        """A ridge probe: fitted in closed form on the frozen-backbone embeddings, whatever train.backbone says."""
        return self.model in PROBE_MODALITIES


def run_config(cfg: TagfConfig, spec: RunSpec) -> TagfConfig:
    """The configuration a run of ``spec`` trains with: a probe always reads the frozen-backbone embeddings."""
    if spec.probe and cfg.train.backbone != "frozen":
        return cfg.model_copy(update={"train": cfg.train.model_copy(update={"backbone": "frozen"})})
    return cfg


@dataclass(frozen=True)
class RunPaths:
    """``<output_root>/<stamp>/<spec.name>/`` and the files in it."""

    folder: Path

    @classmethod
    def of(cls, output_root: Path, spec: RunSpec) -> RunPaths:
        return cls(Path(output_root) / spec.stamp / spec.name)

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint.pt"

    @property
    def best(self) -> Path:
        return self.folder / "best.pt"

    @property
    def log(self) -> Path:
        return self.folder / "training_log.csv"

    @property
    def config(self) -> Path:
        return self.folder / "config.toml"

    @property
    def run_record(self) -> Path:
        """run.json: written before the first epoch, so a run killed early can still be resumed."""
        return self.folder / "run.json"

    @property
    def summary(self) -> Path:
        return self.folder / "summary.json"

    @property
    def plots(self) -> Path:
        return self.folder / "plots"

    def predictions(self, partition: str) -> Path:
        return self.folder / "predictions" / partition


def saved_config(output_root: Path, spec: RunSpec, *, max_epochs: int | None = None) -> TagfConfig:
    """The configuration a run was started with (its config.toml), pointing at ``output_root``.

    ``resume`` and ``predict`` use it, so a run always continues with its own architecture and data;
    only ``max_epochs`` may change (it can extend a finished run).

    Raises:
        TagfError: no run there, or a config file that no longer validates.
    """
    paths = RunPaths.of(output_root, spec)
    if not paths.config.exists():
        raise TagfError(
            f"{paths.folder}: no run here (no config.toml); start it with `tagf train --stamp {spec.stamp}`"
        )
    saved = read_toml(paths.config)
    train = saved.setdefault("train", {})
    train["output_root"] = str(output_root)
    if max_epochs is not None:
        train["max_epochs"] = max_epochs
    try:
        return TagfConfig.model_validate(saved)
    except ValidationError as e:
        raise TagfError(f"{paths.config}: {describe_validation_error(e)}") from e
