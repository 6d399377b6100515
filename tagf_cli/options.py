"""Options several commands share, and help text taken from the config's field descriptions (one source).

A flag that sets a config value defaults to None ("not given"): the value then comes from the config file,
the TAGF_* environment or the built-in default, which its help names as ``(config section.key; default: …)``
(parentheses: rich would read brackets as markup).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from tagf_core.config import TagfConfig
from tagf_core.errors import TagfError
from tagf_core.training.run import ModelName


def config_help(key: str, prefix: str = "") -> str:
    """``<prefix><the field's description> (config <key>; default: <built-in default>)`` for ``section.key``."""
    section, name = key.split(".")
    field = TagfConfig.model_fields[section].annotation.model_fields[name]  # type: ignore[union-attr]
    default = field.default
    shown = "none" if default is None else ", ".join(map(str, default)) if isinstance(default, tuple) else default
    return f"{prefix}{field.description} (config {key}; default: {shown})"


Stamp = Annotated[str, typer.Option("--stamp", help="The experiment's name: its runs are <output-root>/<stamp>/.")]
Fold = Annotated[int, typer.Option("--fold", help="The run's fold 0–5 (ref §2.4; 0 is the official split).")]
Emotion = Annotated[Literal["valence", "arousal"], typer.Option("--emotion", help="The run's emotion (ref §1.1).")]
Model = Annotated[ModelName, typer.Option("--model", help="The run's model: tagf, or a baseline (see `tagf train`).")]
OutputRoot = Annotated[Path | None, typer.Option("--output-root", help=config_help("train.output_root"))]
Experiment = Annotated[str | None, typer.Option("--experiment", help=config_help("tracking.experiment_name"))]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="TOML config file (sections data, model, train, tracking, preprocess).")
]


def settings_changed(cfg: TagfConfig) -> list[str]:
    """``train.learning_rate = 0.001 (reference 0.0001)`` for each setting that is not its built-in default.

    A setting the reference does not have (its description says so) names its ``default`` instead.
    """
    lines = []
    given, defaults = cfg.model_dump(mode="json"), TagfConfig().model_dump(mode="json")
    for section, values in given.items():
        fields = TagfConfig.model_fields[section].annotation.model_fields  # type: ignore[union-attr]
        for key, value in values.items():
            default = defaults[section][key]
            if value != default:
                origin = "default" if "not in the reference" in (fields[key].description or "") else "reference"
                lines.append(f"{section}.{key} = {shown(value)} ({origin} {shown(default)})")
    return lines


def shown(value: Any) -> str:
    if value is None:
        return "none"
    return f"[{', '.join(map(str, value))}]" if isinstance(value, list) else str(value)


SetOverrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="SECTION.KEY=VALUE",
        help="Set any config key, e.g. --set train.learning_rate=1e-3; repeat for several. The value is read as a "
        'TOML literal (1e-3, true, [16, 16], "text"), else as a string. It wins over --config and TAGF_*; '
        "this command's own flags win over it.",
    ),
]


def with_set_overrides(settings: list[str] | None, flags: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``load_config`` overrides: each ``--set section.key=value``, then the flags given (not None) over them.

    Raises TagfError naming a ``--set`` that is not ``section.key=value``; a key or value the config refuses is
    refused, naming it, by ``load_config`` (the same typed checks as a config file).
    """
    merged: dict[str, dict[str, Any]] = {}
    for setting in settings or []:
        key, equals, text = setting.partition("=")
        section, dot, name = key.strip().partition(".")
        if not equals or not dot or not section or not name or "." in name:
            raise TagfError(f"--set {setting!r}: expected SECTION.KEY=VALUE, e.g. train.learning_rate=1e-3")
        merged.setdefault(section, {})[name] = toml_literal(text.strip())
    for section, values in flags.items():
        merged.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    return merged


def toml_literal(text: str) -> Any:
    """``1e-3`` → 0.001, ``[16, 16]`` → [16, 16], ``true`` → True; anything that is no TOML value stays text."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text
