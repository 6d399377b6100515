"""Typed configuration: every default is the reference value, in one place. Imports no torch.

Precedence, lowest to highest: these defaults, the TOML file given with ``--config``,
``TAGF_*`` environment variables (``TAGF_TRAIN__BATCH_SIZE=8``: section and key joined by ``__``),
then command-line flags. The layers are pydantic-settings sources merged by ``BaseSettings`` itself
(``_Layers.settings_customise_sources``): init kwargs for the flags, ``EnvSettingsSource`` for the
environment, ``TomlConfigSettingsSource`` for the file. Two small pieces stay hand-written, because
pydantic-settings does not do them:

- ``_check_environment``: pydantic-settings ignores environment variables that match no field, so a
  mistyped ``TAGF_TRIAN__BATCH_SIZE`` would be silently dropped; every ``TAGF_*`` name is checked first.
- ``_ConfigFile``: ``TomlConfigSettingsSource`` skips a path that is not a file and lets a TOML syntax
  error through as is; the ``--config`` file is read with ``read_toml`` instead (one line naming the file).
  It overrides ``_read_files`` of pydantic-settings, the one private method relied on. A source reads its
  file name from the settings class, so ``load_config`` uses a small subclass per file (about 1 ms).

It is longer than most modules because it is the one place every setting and its reference default live.
The run's fold and emotion are not settings: they come from ``--fold``/``--emotion`` into a ``RunSpec``.
This module imports nothing from ``tagf_core.data``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from tagf_core.errors import TagfError

ENV_PREFIX = "TAGF_"
ENV_NESTED_DELIMITER = "__"

# Settings earlier versions had, as (section, key): why each is gone. Old run folders still hold them.
RETIRED_SETTINGS: dict[tuple[str, str], str] = {
    ("data", "fold"): "choose the run's fold with --fold",
    ("data", "emotion"): "choose the run's emotion with --emotion",
    ("data", "face_size"): "faces are stored at 48×48 (tagf_core.data.layout.FACE_SIZE)",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic would read `batch_size = true` as 1; a boolean where a number belongs is a mistake
        annotation = cls.model_fields[info.field_name].annotation if info.field_name else None
        if isinstance(value, bool) and annotation in (int, float):
            raise ValueError("expected a number, not true/false")
        return value


class DataConfig(_Section):
    processed_root: Path = Field(
        Path("data/processed"),
        description="Folder written by `tagf preprocess`, holding manifest.json (not in the reference).",
    )
    window_len: int = Field(300, ge=1, description="Frames per window; also sizes the attention keys (ref §2.5, §1.6).")
    hop_len: int = Field(200, ge=1, description="Frames between window starts (ref §2.5).")
    crop_size: int = Field(
        40,
        ge=1,
        le=48,  # tagf_core.data.layout.FACE_SIZE; config imports no data module (a test checks they agree)
        description="Side of the face crop fed to IR-50, at most the stored 48-pixel face (ref §1.2, §2.6).",
    )
    embeddings_root: Path | None = Field(
        None,
        description="Folder of the frozen-backbone embedding caches; unset: <processed_root>/embeddings. Set it "
        "when the processed folder is read-only or shared (not in the reference).",
    )
    num_workers: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto",
        description="DataLoader worker processes, or auto: 0 on the CPU (loading measured under 1% of a training "
        "step there, see BENCHMARKS.md), 4 on CUDA (at most the cores). Any count gives the same batches; the "
        "reference uses 0 (ref §2.5).",
    )


class ModelConfig(_Section):
    tcn_kernel_size: int = Field(5, ge=1, description="Kernel size of both TCNs (ref §1.4).")
    video_tcn_channels: tuple[int, ...] = Field(
        (512, 512, 256, 256), min_length=1, description="Channels of each video TCN level (ref §1.4)."
    )
    audio_tcn_channels: tuple[int, ...] = Field(
        (128, 128, 128, 128), min_length=1, description="Channels of each audio TCN level (ref §1.4)."
    )
    tcn_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout inside the TCNs (ref §1.4).")
    attention_dropout: float = Field(0.6, ge=0.0, lt=1.0, description="Dropout of the cross-attention (ref §1.6).")
    gate_temperature: float = Field(0.1, gt=0.0, description="Softmax temperature of the fusion gate (ref §1.7).")


class TrainConfig(_Section):
    batch_size: int = Field(12, ge=1, description="Windows per batch (ref §2.5).")
    learning_rate: float = Field(1e-4, gt=0.0, description="Adam learning rate (ref §3.2).")
    min_learning_rate: float = Field(
        1e-8, gt=0.0, description="A learning rate below this triggers the next backbone release (ref §3.4)."
    )
    weight_decay: float = Field(1e-3, ge=0.0, description="Adam weight decay, coupled L2 (ref §3.2).")
    max_epochs: int = Field(100, ge=1, description="Most epochs a run trains (ref §3.5).")
    min_epochs: int = Field(5, ge=1, description="Warm-up length and fewest epochs before a release (ref §3.3).")
    early_stopping: int = Field(50, ge=1, description="Epochs without improvement before stopping (ref §3.5).")
    plateau_patience: int = Field(
        5, ge=0, description="Epochs without a better validation CCC before the lr drops (ref §3.3)."
    )
    plateau_factor: float = Field(
        0.1, gt=0.0, lt=1.0, description="Factor the lr is multiplied by on a plateau (ref §3.3)."
    )
    seed: int = Field(3407, ge=0, description="Random seed (ref §3.6).")
    gradual_release: bool = Field(True, description="Release the backbone groups one by one (ref §3.4).")
    release_count: int = Field(3, ge=0, le=3, description="How many backbone groups to release (ref §3.4).")
    milestones: tuple[int, ...] = Field(
        (0,), description="Epochs that force a release whatever the lr; must include 0 (ref §3.4)."
    )
    load_best_at_each_epoch: bool = Field(True, description="Reload the best weights after each epoch (ref §3.5).")
    batchnorm_statistics: Literal["precise", "running"] = Field(
        "precise",
        description="precise: BatchNorm statistics recomputed over the training windows, dropout off, before every "
        "evaluation (a deviation, see the README); running: the reference's momentum-0.1 running averages, "
        "reloaded with the best weights (ref §3.5).",
    )
    precise_batchnorm_batches: int = Field(
        200,
        ge=1,
        description="With precise statistics: the most training batches, in training order, per recomputation "
        "(not in the reference).",
    )
    backbone: Literal["release", "frozen"] = Field(
        "release",
        description="release: the reference's backbones in the loop, released in stages (ref §3.4); frozen: "
        "backbones in eval mode, per-frame embeddings computed once and cached (faster; a documented deviation).",
    )
    weights_dir: Path | None = Field(
        None,
        description="Folder with res50_ir_0.887.pth and vggish.pth; without it the backbones are random (ref §1.2, "
        "§1.3).",
    )
    output_root: Path = Field(
        Path("outputs"),
        description="Run folders go to <output_root>/<stamp>/fold<K>-<emotion>/ (not in the reference).",
    )
    device: str = Field(
        "auto",
        description="torch device: auto (CUDA if available, else CPU), cpu, cuda, cuda:1, … (not in the reference).",
    )
    embedding_batch_size: int = Field(
        256, ge=1, description="Frames per backbone batch when building the embedding cache (not in the reference)."
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="bf16: forward passes under bfloat16 autocast; meant for CUDA, changes the numbers (not in the "
        "reference).",
    )
    compile: bool = Field(
        False, description="torch.compile the training forward; meant for CUDA (not in the reference)."
    )


class TrackingConfig(_Section):
    tracking_uri: str = Field("sqlite:///mlflow.db", description="MLflow tracking store (not in the reference).")
    artifact_root: Path = Field(
        Path("mlruns"), description="Folder for the MLflow artifacts of a local store (not in the reference)."
    )
    experiment_name: str = Field(
        "tagf", min_length=1, description="MLflow experiment the runs are logged under (not in the reference)."
    )
    register_as: str | None = Field(
        None,
        min_length=1,
        description="Register each run's model in the MLflow registry as <name>-<emotion> (-<model> for a "
        "baseline); the best validation CCC so far gets the alias champion (not in the reference).",
    )


class PreprocessConfig(_Section):
    workers: int = Field(
        0, ge=0, description="Trials processed in parallel; 0 is one per CPU core (not in the reference)."
    )


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


def drop_retired_settings(values: dict[str, Any]) -> dict[str, Any]:
    """A copy of parsed TOML without the settings earlier versions wrote (``data.fold``, ``data.emotion``,
    ``data.face_size``), for reading back the config.toml of an old run folder."""
    return {
        section: {key: value for key, value in keys.items() if (section, key) not in RETIRED_SETTINGS}
        if isinstance(keys, dict)
        else keys
        for section, keys in values.items()
    }


def _retired_message(section: str, key: str) -> str:
    return f"{section}.{key} is no longer a setting: {RETIRED_SETTINGS[section, key]}"


def _refuse_retired(values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` unchanged, or a one-line TagfError for its retired settings, prefixed with ``where``."""
    retired = [
        _retired_message(section, key)
        for section, keys in values.items()
        if isinstance(keys, dict)
        for key in keys
        if (section, key) in RETIRED_SETTINGS
    ]
    if retired:
        raise TagfError(where + "; ".join(retired))
    return values


def _check_environment() -> None:
    """Refuse a ``TAGF_*`` variable that names no section, or a retired setting (pydantic-settings ignores both)."""
    sections = TagfConfig.model_fields
    for name in sorted(os.environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        section, delimiter, key = name[len(ENV_PREFIX) :].lower().partition(ENV_NESTED_DELIMITER)
        if section not in sections or not delimiter or not key:
            raise TagfError(
                f"environment variable {name}: not a tagf setting (expected {ENV_PREFIX}<SECTION>"
                f"{ENV_NESTED_DELIMITER}<KEY> with SECTION one of {', '.join(sections)})"
            )
        if (section, key) in RETIRED_SETTINGS:
            raise TagfError(f"environment variable {name}: {_retired_message(section, key)}")


class _ConfigFile(TomlConfigSettingsSource):
    """The ``--config`` file (``model_config["toml_file"]``), read with ``read_toml``: a missing or broken file is
    a one-line TagfError naming it (pydantic-settings would skip a missing one), and so is a retired setting."""

    def _read_files(self, files: Any, deep_merge: bool = False) -> dict[str, Any]:
        if files is None:
            return {}
        return _refuse_retired(read_toml(Path(files)), f"{files}: ")


class _Layers(BaseSettings, TagfConfig):
    """TagfConfig's fields and checks, filled from flags (init kwargs) > environment > ``--config`` file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        case_sensitive=False,
        extra="forbid",
        frozen=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _ConfigFile(settings_cls)


def _layers_reading(config_file: Path | None) -> type[_Layers]:
    """``_Layers``, or a subclass whose TOML source reads ``config_file`` (a source reads its file from the class)."""
    if config_file is None:
        return _Layers
    toml_file = Path(config_file)

    class _LayersWithFile(_Layers):
        model_config = SettingsConfigDict(toml_file=toml_file)

    return _LayersWithFile


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
    "flag not given" and are dropped. Raises TagfError with one line naming each bad key, or naming a
    retired setting (``data.fold``, ``data.emotion``, ``data.face_size``) and what replaces it.
    """
    _check_environment()
    given: dict[str, Any] = {
        section: {k: v for k, v in values.items() if v is not None} for section, values in (overrides or {}).items()
    }
    given = _refuse_retired({section: values for section, values in given.items() if values}, "")
    try:
        layers = _layers_reading(config_file)(**given)
    except SettingsError as e:
        raise TagfError(f"environment: {' '.join(str(e).split())} (lists are JSON, e.g. '[0, 5]')") from e
    except ValidationError as e:
        where = f" [config file {config_file}, TAGF_* environment or flags]" if config_file else ""
        raise TagfError(f"invalid configuration: {describe_validation_error(e, where)}") from e
    return TagfConfig.model_validate(dict(layers))


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value


def config_to_toml(config: TagfConfig) -> str:
    """Render a config as TOML, so a run can be reproduced with ``--config``.

    None values are left out (TOML has no null; a missing key reads back as the default None); paths are
    written as strings and tuples as arrays.
    """
    return tomli_w.dumps(_without_none(config.model_dump(mode="json")))
