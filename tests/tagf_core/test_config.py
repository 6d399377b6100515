"""Configuration: reference defaults, precedence file < environment < flags, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagf_core.config import TagfConfig, config_to_toml, load_config
from tagf_core.errors import TagfError


def test_defaults_are_the_reference_values() -> None:
    cfg = TagfConfig()
    assert (cfg.data.window_len, cfg.data.hop_len, cfg.data.fold) == (300, 200, 0)
    assert cfg.train.batch_size == 12
    assert cfg.train.learning_rate == 1e-4
    assert cfg.train.weight_decay == 1e-3
    assert (cfg.train.max_epochs, cfg.train.min_epochs, cfg.train.early_stopping) == (100, 5, 50)
    assert (cfg.train.plateau_patience, cfg.train.plateau_factor) == (5, 0.1)
    assert cfg.train.seed == 3407
    assert cfg.train.release_count == 3
    assert cfg.train.milestones == (0,)
    assert cfg.tracking.tracking_uri == "sqlite:///mlflow.db"


def test_precedence_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file = tmp_path / "run.toml"
    config_file.write_text("[train]\nbatch_size = 4\nseed = 1\nlearning_rate = 0.01\n")
    monkeypatch.setenv("TAGF_TRAIN__SEED", "2")
    monkeypatch.setenv("TAGF_TRAIN__LEARNING_RATE", "0.02")
    cfg = load_config(config_file, {"train": {"learning_rate": 0.03, "batch_size": None}})
    assert cfg.train.batch_size == 4  # file only (a flag left at None is "not given")
    assert cfg.train.seed == 2  # environment beats file
    assert cfg.train.learning_rate == 0.03  # flag beats environment


def test_environment_lists_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGF_TRAIN__MILESTONES", "[0, 7]")
    assert load_config().train.milestones == (0, 7)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[train]\nbatch_size = 0\n", "train.batch_size: Input should be greater than or equal to 1 (got 0)"),
        ("[train]\nbatchsize = 3\n", "train.batchsize: unknown setting"),
        ("[data]\nemotion = 'joy'\n", "data.emotion: Input should be 'valence' or 'arousal'"),
        ("[data]\ncrop_size = 60\n", "data.crop_size 60 exceeds data.face_size 48"),
    ],
)
def test_bad_value_is_one_line_naming_the_key(tmp_path: Path, toml: str, expected: str) -> None:
    config_file = tmp_path / "bad.toml"
    config_file.write_text(toml)
    with pytest.raises(TagfError) as caught:
        load_config(config_file)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_fold_six_is_refused_with_the_reason() -> None:
    with pytest.raises(TagfError, match=r"fold 6 does not exist: folds are 0–5 .*repeats fold 0"):
        load_config(overrides={"data": {"fold": 6}})


def test_bad_toml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\n")
    with pytest.raises(TagfError, match="broken.toml: not valid TOML"):
        load_config(broken)
    with pytest.raises(TagfError, match="absent.toml: config file not found"):
        load_config(tmp_path / "absent.toml")


def test_rendered_toml_reads_back_to_the_same_config(tmp_path: Path) -> None:
    cfg = load_config(overrides={"train": {"seed": 11, "milestones": [0, 3]}, "data": {"emotion": "arousal"}})
    saved = tmp_path / "resolved.toml"
    saved.write_text(config_to_toml(cfg))
    assert load_config(saved) == cfg


@pytest.mark.parametrize("variable", ["TAGF_TRIAN__BATCH_SIZE", "TAGF_TRAIN_BATCH_SIZE", "TAGF_TRAIN"])
def test_a_mistyped_environment_variable_is_an_error(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "8")
    with pytest.raises(TagfError, match=f"environment variable {variable}: not a tagf setting"):
        load_config()


def test_an_unknown_key_in_a_known_section_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGF_TRAIN__BATCHSIZE", "8")
    with pytest.raises(TagfError, match="train.batchsize: unknown setting"):
        load_config()


def test_environment_strings_stay_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGF_TRACKING__EXPERIMENT_NAME", "2025")
    assert load_config().tracking.experiment_name == "2025"


def test_a_boolean_is_not_a_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file = tmp_path / "bool.toml"
    config_file.write_text("[data]\nfold = true\n")
    with pytest.raises(TagfError, match="data.fold: expected a number, not true/false"):
        load_config(config_file)
    monkeypatch.setenv("TAGF_DATA__FOLD", "true")
    with pytest.raises(TagfError, match="data.fold"):
        load_config()


def test_a_list_that_is_not_json_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGF_TRAIN__MILESTONES", "[0, x]")
    with pytest.raises(TagfError, match=r"lists are JSON"):
        load_config()
