"""Options several commands share, and help text taken from the config's field descriptions (one source).

A flag that sets a config value defaults to None ("not given"): the value then comes from the config file,
the TAGF_* environment or the built-in default, which its help names as ``(config section.key; default: …)``
(parentheses: rich would read brackets as markup).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from tagf_core.config import TagfConfig
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
