"""Typed configuration: every default is the reference value, in one place. Imports no torch.

Precedence, lowest to highest: these defaults, the TOML file given with ``--config``,
``TAGF_*`` environment variables (``TAGF_TRAIN__BATCH_SIZE=8``: section and key joined by ``__``),
then command-line flags.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict, SettingsError

from tagf_core.data.folds import check_fold
from tagf_core.errors import TagfError

ENV_PREFIX = "TAGF_"
ENV_NESTED_DELIMITER = "__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic would read `fold = true` as fold 1; a boolean where a number belongs is a mistake
        annotation = cls.model_fields[info.field_name].annotation if info.field_name else None
        if isinstance(value, bool) and annotation in (int, float):
            raise ValueError("expected a number, not true/false")
        return value


class DataConfig(_Section):
    processed_root: Path = Field(
        Path("data/processed"), description="Folder written by `tagf preprocess` (holds manifest.json)."
    )
    fold: int = Field(0, description="Cross-validation fold 0–5 (ref §2.4); 0 is the official train/validation split.")
    emotion: Literal["valence", "arousal"] = Field(
        "valence", description="Which label one model learns; the reference trains one model per emotion (§1.1)."
    )
    window_len: int = Field(
        300, ge=1, description="Frames per window (ref §2.5); also sizes the attention keys (§1.6)."
    )
    hop_len: int = Field(200, ge=1, description="Frames between window starts (ref §2.5).")
    face_size: int = Field(48, ge=1, description="Stored face size in pixels (ref §2.2).")
    crop_size: int = Field(40, ge=1, description="Face crop fed to IR-50 (ref §1.2, §2.6).")
    num_workers: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto",
        description="DataLoader worker processes; auto: 0 on the CPU (the memory-mapped loader measured under 1% of "
        "a training step there, see BENCHMARKS.md), 4 on CUDA (at most the cores). The reference uses 0 "
        "(ref §2.5); any count gives the same batches.",
    )

    @field_validator("fold")
    @classmethod
    def _fold_exists(cls, fold: int) -> int:
        try:
            return check_fold(fold)
        except TagfError as e:
            raise ValueError(str(e)) from e


class ModelConfig(_Section):
    tcn_kernel_size: int = Field(5, ge=1, description="TCN kernel size (ref §1.4).")
    video_tcn_channels: tuple[int, ...] = Field(
        (512, 512, 256, 256), min_length=1, description="Video TCN channels (ref §1.4)."
    )
    audio_tcn_channels: tuple[int, ...] = Field(
        (128, 128, 128, 128), min_length=1, description="Audio TCN channels (ref §1.4)."
    )
    tcn_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="TCN dropout (ref §1.4).")
    attention_dropout: float = Field(0.6, ge=0.0, lt=1.0, description="Cross-attention dropout (ref §1.6).")
    gate_temperature: float = Field(0.1, gt=0.0, description="Softmax temperature of the gate (ref §1.7).")


class TrainConfig(_Section):
    batch_size: int = Field(12, ge=1, description="Windows per batch (ref §2.5).")
    learning_rate: float = Field(1e-4, gt=0.0, description="Adam learning rate (ref §3.2).")
    min_learning_rate: float = Field(1e-8, gt=0.0, description="Release trigger threshold (ref §3.4).")
    weight_decay: float = Field(1e-3, ge=0.0, description="Adam (coupled L2) weight decay (ref §3.2).")
    max_epochs: int = Field(100, ge=1, description="Maximum epochs (ref §3.5).")
    min_epochs: int = Field(5, ge=1, description="Warm-up length and minimum epochs (ref §3.3).")
    early_stopping: int = Field(50, ge=1, description="Non-improving epochs before stopping (ref §3.5).")
    plateau_patience: int = Field(5, ge=0, description="Plateau patience on validation CCC (ref §3.3).")
    plateau_factor: float = Field(0.1, gt=0.0, lt=1.0, description="Plateau lr factor (ref §3.3).")
    seed: int = Field(3407, ge=0, description="Random seed (ref §3.6).")
    gradual_release: bool = Field(True, description="Release backbone groups one by one (ref §3.4).")
    release_count: int = Field(3, ge=0, le=3, description="Backbone groups to release (ref §3.4).")
    milestones: tuple[int, ...] = Field((0,), description="Epochs that force a release (ref §3.4).")
    load_best_at_each_epoch: bool = Field(True, description="Reset to the best weights after each epoch (ref §3.5).")
    batchnorm_statistics: Literal["precise", "running"] = Field(
        "precise",
        description="precise: BatchNorm statistics recomputed over the training windows, dropout off, before every "
        "evaluation (a deviation: see the README); running: the reference's momentum-0.1 running averages, "
        "reloaded with the best weights (ref §3.5).",
    )
    precise_batchnorm_batches: int = Field(
        200, ge=1, description="precise: at most this many training batches (in training order) per recomputation."
    )
    backbone: Literal["release", "frozen"] = Field(
        "release",
        description="release: the reference's backbones in the loop, released in 3 stages (ref §3.4); frozen: "
        "backbones in eval mode, per-frame embeddings computed once and cached (fast, a documented deviation).",
    )
    weights_dir: Path | None = Field(
        None, description="Folder with res50_ir_0.887.pth and vggish.pth; without them the backbones are random."
    )
    output_root: Path = Field(
        Path("outputs"), description="Run folders go to <output_root>/<stamp>/fold<K>-<emotion>/."
    )
    device: str = Field("auto", description="torch device: auto (CUDA if available, else CPU), cpu, cuda, cuda:1, …")
    embedding_batch_size: int = Field(256, ge=1, description="Frames per backbone batch when building the cache.")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="bf16: forward passes under bfloat16 autocast (meant for CUDA; changes the numbers; off by "
        "default, not in the reference).",
    )
    compile: bool = Field(
        False, description="torch.compile the training forward (meant for CUDA; off by default, not in the reference)."
    )


class TrackingConfig(_Section):
    tracking_uri: str = Field("sqlite:///mlflow.db", description="MLflow tracking store.")
    artifact_root: Path = Field(Path("mlruns"), description="Folder for MLflow artifacts of a local store.")
    experiment_name: str = Field("tagf", min_length=1, description="MLflow experiment runs are logged under.")


class PreprocessConfig(_Section):
    workers: int = Field(0, ge=0, description="Trials processed in parallel; 0 = one per CPU core.")


class TagfConfig(_Section):
    """The whole configuration of a tagf run."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    tracking: TrackingConfig = TrackingConfig()
    preprocess: PreprocessConfig = PreprocessConfig()

    @model_validator(mode="after")
    def _check_together(self) -> TagfConfig:
        problems = []
        if self.data.crop_size > self.data.face_size:
            problems.append(f"data.crop_size {self.data.crop_size} exceeds data.face_size {self.data.face_size}")
        if self.data.hop_len > self.data.window_len:
            problems.append(
                f"data.hop_len {self.data.hop_len} exceeds data.window_len {self.data.window_len} "
                "(frames between windows would never be seen)"
            )
        if self.train.min_learning_rate >= self.train.learning_rate:
            problems.append("train.min_learning_rate must be below train.learning_rate")
        if any(m < 0 for m in self.train.milestones):
            problems.append("train.milestones must be epochs >= 0")
        if 0 not in self.train.milestones:
            problems.append("train.milestones must include 0: the first release creates the optimizer (ref §3.4)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config file; raise TagfError naming the file on a missing file or a syntax error."""
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as e:
        raise TagfError(f"{path}: config file not found") from e
    except tomllib.TOMLDecodeError as e:
        raise TagfError(f"{path}: not valid TOML ({e})") from e
    except OSError as e:
        raise TagfError(f"{path}: cannot read config file ({e})") from e


def read_environment() -> dict[str, Any]:
    """Collect ``TAGF_<SECTION>__<KEY>`` variables into a nested dict for validation.

    Values stay strings (pydantic converts them by field type) except lists, given as JSON
    (``TAGF_TRAIN__MILESTONES='[0, 5]'``). Every ``TAGF_*`` variable must name a known section: a typo
    is an error, not a silently ignored setting; an unknown key inside a section fails validation.

    Raises:
        TagfError: a variable outside the known sections, or a list value that is not JSON.
    """
    sections = TagfConfig.model_fields
    for name in os.environ:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        section, delimiter, key = name[len(ENV_PREFIX) :].lower().partition(ENV_NESTED_DELIMITER)
        if section not in sections or not delimiter or not key:
            raise TagfError(
                f"environment variable {name}: not a tagf setting (expected {ENV_PREFIX}<SECTION>"
                f"{ENV_NESTED_DELIMITER}<KEY> with SECTION one of {', '.join(sections)})"
            )
    fields: dict[str, Any] = {name: (field.annotation, field.default) for name, field in sections.items()}
    layer = create_model("_EnvironmentLayer", __base__=BaseSettings, **fields)
    layer.model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER, case_sensitive=False, extra="ignore"
    )
    try:
        values = EnvSettingsSource(layer)()
    except SettingsError as e:
        raise TagfError(f"environment: {' '.join(str(e).split())} (lists are JSON, e.g. '[0, 5]')") from e
    return {section: dict(keys) for section, keys in values.items() if keys}


def describe_validation_error(error: ValidationError, sources: str = "") -> str:
    """One line per bad field: ``train.batch_size: Input should be greater than or equal to 1 (got 0)``."""
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "config"
        message = item["msg"].removeprefix("Value error, ")
        got = f" (got {item['input']!r})" if item["type"] not in {"extra_forbidden", "value_error"} else ""
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        lines.append(f"{key}: {message}{got}{sources}")
    return "; ".join(lines)


def load_config(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> TagfConfig:
    """Resolve defaults ← TOML file ← ``TAGF_*`` environment ← ``overrides`` (CLI flags) into a TagfConfig.

    ``overrides`` is nested by section (``{"train": {"batch_size": 8}}``); ``None`` values mean
    "flag not given" and are dropped. Raises TagfError with one line naming each bad key.
    """
    layers: dict[str, Any] = {}
    if config_file is not None:
        layers = _deep_merge(layers, read_toml(config_file))
    layers = _deep_merge(layers, read_environment())
    given = {
        section: {k: v for k, v in values.items() if v is not None} for section, values in (overrides or {}).items()
    }
    layers = _deep_merge(layers, {s: v for s, v in given.items() if v})
    try:
        return TagfConfig.model_validate(layers)
    except ValidationError as e:
        where = f" [config file {config_file}, TAGF_* environment or flags]" if config_file else ""
        raise TagfError(f"invalid configuration: {describe_validation_error(e, where)}") from e


def config_to_toml(config: TagfConfig) -> str:
    """Render a config as TOML (sections and scalars/lists only), so a run can be reproduced with ``--config``."""
    lines: list[str] = []
    for section, values in config.model_dump(mode="json").items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if value is None:  # TOML has no null; leaving the key out reads back as the default None
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
