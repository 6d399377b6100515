"""What a run is (``RunSpec``), and its folder on disk (``RunPaths``): the only definition of the run folder.

<output_root>/<stamp>/.<spec.name>.lock   held while a process trains the run (``hold_run``)
<output_root>/<stamp>/<spec.name>/
  run.json            the run record: MLflow run id, debug, spec, and the launch/host/pid holding the run
  config.toml         the resolved configuration (``tagf resume``/``predict`` read it back)
  checkpoint.pt       everything a resume needs (``checkpoint.py``), the best weights included, after every epoch
  best.pt             the best epoch's trained weights, with the config and spec that rebuild the model; a copy
                      of the checkpoint's, written after it (a resume writes it again from the checkpoint)
  training_log.csv    one row per epoch
  summary.json        the end of the run: best validation CCC and epoch, stop reason, run id
  plots/              curves.png, validate_<trial>.png
  predictions/validate/<trial>.csv, predictions/extra/<trial>.txt
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from tagf_core.atomic import atomic_write
from tagf_core.config import TagfConfig, describe_validation_error, drop_retired_settings, read_toml
from tagf_core.data.folds import check_fold
from tagf_core.data.layout import EMOTIONS, Emotion
from tagf_core.errors import TagfError
from tagf_core.locks import LockTaken, exclusive_lock

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
_RUN_NAME = re.compile(
    r"fold(\d+)-(" + "|".join(EMOTIONS) + r")(?:-(" + "|".join(re.escape(m) for m in MODELS if m != "tagf") + r"))?"
)
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

    @staticmethod
    def parse_name(name: str) -> tuple[int, Emotion, ModelName] | None:
        """(fold, emotion, model) of a run folder's name (``name`` read back), or None for any other name."""
        match = _RUN_NAME.fullmatch(name)
        if match is None:
            return None
        return int(match.group(1)), match.group(2), match.group(3) or "tagf"  # type: ignore[return-value]

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
    def lock(self) -> Path:
        """Beside the folder, not in it: ``--overwrite`` deletes the folder while the lock is held."""
        return self.folder.parent / f".{self.folder.name}.lock"

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


@dataclass(frozen=True)
class RunResult:
    """How a run (or a resumed attempt of it) ended, and where."""

    name: str
    """``RunSpec.name``."""
    folder: Path
    run_id: str
    best_val_ccc: float
    best_epoch: int
    epochs_run: int
    stop_reason: str
    started_epoch: int
    """The epoch this attempt began with: 0 for a new run, the checkpoint's next epoch for a resumed one."""
    worker: str
    """host:pid of the process that trained it."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def hold_run(paths: RunPaths) -> Iterator[None]:
    """Hold the run's lock for the ``with`` block: one process at a time trains (or resumes) a run.

    The lock dies with its process (``tagf_core.locks``), so a killed run is never locked out of ``tagf resume``.
    A stamp folder made here and still empty at the end (the run failed before it began) is removed again.

    Raises:
        TagfError: another live process holds the run (naming its host and pid), or the stamp folder cannot be
            created (a read-only output root, ...).
    """
    with stamp_folder(paths.folder.parent):
        try:
            with exclusive_lock(paths.lock, f"tagf training {paths.folder.parent.name}/{paths.folder.name}"):
                yield
        except LockTaken as e:
            holder = e.holder.describe() if e.holder else "another process"
            raise TagfError(
                f"{paths.folder}: this run is being trained by {holder}; wait for it to end "
                "(or stop it, then `tagf resume`)"
            ) from None


@contextmanager
def stamp_folder(folder: Path) -> Iterator[Path]:
    """``<output_root>/<stamp>/`` for the ``with`` block; removed at the end if made here and still empty.

    Raises:
        TagfError: it cannot be created (a read-only output root, ...).
    """
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TagfError(f"{folder}: cannot create the stamp folder ({e.strerror or e})") from e
    try:
        yield folder
    finally:
        if made:
            with suppress(OSError):  # not empty: something was trained or is being trained there
                folder.rmdir()


def remove_temporary_files(paths: RunPaths) -> None:
    """Drop what a killed write left in the run folder (``atomic_write``'s ``.<name>.*.tmp``)."""
    for leftover in paths.folder.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


def check_run_folder(paths: RunPaths, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start over an existing run (unless overwriting) and to resume a run that does not exist."""
    if paths.folder.exists() and not resume and not overwrite:
        raise TagfError(
            f"{paths.folder}: a run with this stamp, fold and emotion exists; continue it with `tagf resume` "
            "(or `tagf train --resume`), or start it again with --overwrite"
        )
    if resume and not paths.run_record.exists():
        raise TagfError(f"{paths.folder}: no run to resume here (start it with `tagf train`)")


def write_run_record(paths: RunPaths, spec: RunSpec, run_id: str, *, debug: bool, launch: str) -> None:
    """run.json, before the first epoch: the MLflow run, the trials (debug) and the process holding the run."""
    record = {
        "run_id": run_id, "debug": debug, **asdict(spec),
        "launch": launch, "host": socket.gethostname(), "pid": os.getpid(),
    }  # fmt: skip
    atomic_write(paths.run_record, json.dumps(record) + "\n")


def read_run_record(paths: RunPaths) -> dict[str, Any]:
    """run.json as written by ``write_run_record``; {} when the run has none; TagfError naming it if unreadable."""
    if not paths.run_record.exists():
        return {}
    try:
        record = json.loads(paths.run_record.read_text())
        str(record["run_id"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TagfError(f"{paths.run_record}: unreadable run record ({e})") from e
    return dict(record)


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
    saved = drop_retired_settings(read_toml(paths.config))  # written by an earlier tagf: data.fold, data.emotion
    train = saved.setdefault("train", {})
    train["output_root"] = str(output_root)
    if max_epochs is not None:
        train["max_epochs"] = max_epochs
    try:
        return TagfConfig.model_validate(saved)
    except ValidationError as e:
        raise TagfError(f"{paths.config}: {describe_validation_error(e)}") from e
