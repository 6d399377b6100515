"""Configuration: reference defaults, precedence file < environment < flags, one-line errors."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tagf_core.config import (
    RETIRED_SETTINGS,
    TagfConfig,
    config_to_toml,
    drop_retired_settings,
    load_config,
    read_toml,
)
from tagf_core.data.layout import FACE_SIZE
from tagf_core.errors import TagfError


def test_defaults_are_the_reference_values() -> None:
    cfg = TagfConfig()
    assert (cfg.data.window_len, cfg.data.hop_len, cfg.data.crop_size) == (300, 200, 40)
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


def test_precedence_across_all_four_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each key is set by the layers up to one: the highest of those wins, and sections merge key by key."""
    config_file = tmp_path / "run.toml"
    config_file.write_text(
        "[train]\nbatch_size = 4\nseed = 1\nmax_epochs = 7\n[data]\nhop_len = 30\n"
        "[tracking]\nexperiment_name = 'file'\n"
    )
    monkeypatch.setenv("TAGF_TRAIN__SEED", "2")
    monkeypatch.setenv("TAGF_TRAIN__MAX_EPOCHS", "8")
    monkeypatch.setenv("tagf_tracking__experiment_name", "env")  # names are case-insensitive
    monkeypatch.setenv("TAGF_MODEL__TCN_KERNEL_SIZE", "3")
    cfg = load_config(config_file, {"train": {"max_epochs": 9}, "data": {"window_len": 250}, "model": {}})
    assert cfg.train.min_epochs == TagfConfig().train.min_epochs == 5  # default only
    assert (cfg.train.batch_size, cfg.data.hop_len) == (4, 30)  # file over default
    assert (cfg.train.seed, cfg.tracking.experiment_name, cfg.model.tcn_kernel_size) == (2, "env", 3)  # env over file
    assert (cfg.train.max_epochs, cfg.data.window_len) == (9, 250)  # flag over env and file


def test_environment_lists_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGF_TRAIN__MILESTONES", "[0, 7]")
    assert load_config().train.milestones == (0, 7)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[train]\nbatch_size = 0\n", "train.batch_size: Input should be greater than or equal to 1 (got 0)"),
        ("[train]\nbatchsize = 3\n", "train.batchsize: unknown setting"),
        ("[trian]\nbatch_size = 3\n", "trian: unknown setting"),
        ("[train]\nbackbone = 'thawed'\n", "train.backbone: Input should be 'release' or 'frozen'"),
        ("[data]\ncrop_size = 60\n", "data.crop_size: Input should be less than or equal to 48 (got 60)"),
        ("[data]\nhop_len = 400\n", "data.hop_len 400 exceeds data.window_len 300"),
    ],
)
def test_bad_value_is_one_line_naming_the_key(tmp_path: Path, toml: str, expected: str) -> None:
    config_file = tmp_path / "bad.toml"
    config_file.write_text(toml)
    with pytest.raises(TagfError) as caught:
        load_config(config_file)
    message = str(caught.value)
    assert expected in message
    assert str(config_file) in message
    assert "\n" not in message


def test_crop_size_bound_is_the_stored_face_size() -> None:
    """config.py writes the bound as a literal (it imports no data module): it must stay layout.FACE_SIZE."""
    assert load_config(overrides={"data": {"crop_size": FACE_SIZE}}).data.crop_size == FACE_SIZE
    with pytest.raises(TagfError, match=f"data.crop_size: Input should be less than or equal to {FACE_SIZE} "):
        load_config(overrides={"data": {"crop_size": FACE_SIZE + 1}})


def test_config_imports_no_data_module() -> None:
    code = "import sys, tagf_core.config; print(sorted(m for m in sys.modules if m.startswith('tagf_core.data')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_bad_toml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\n")
    with pytest.raises(TagfError, match="broken.toml: not valid TOML"):
        load_config(broken)
    with pytest.raises(TagfError, match="absent.toml: config file not found"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(TagfError, match="cannot read config file"):
        load_config(tmp_path)  # a folder, not a file


def test_rendered_toml_reads_back_to_the_same_config(tmp_path: Path) -> None:
    cfg = load_config(overrides={"train": {"seed": 11, "milestones": [0, 3]}, "model": {"tcn_kernel_size": 3}})
    saved = tmp_path / "resolved.toml"
    saved.write_text(config_to_toml(cfg))
    assert load_config(saved) == cfg


def test_rendered_toml_round_trips_awkward_values(tmp_path: Path) -> None:
    """Paths with a backslash and a quote, a set optional path, tuples and floats survive the round trip;
    a None value is left out (TOML has no null) and reads back as None."""
    awkward = 'C:\\runs\\"quoted" dir'
    cfg = load_config(
        overrides={
            "data": {"processed_root": Path(awkward), "num_workers": 2},
            "train": {"weights_dir": Path("weights"), "min_learning_rate": 1e-9, "milestones": (0, 4, 8)},
            "model": {"video_tcn_channels": (64, 32)},
            "tracking": {"tracking_uri": "file:///tmp/it's \\ here"},
        }
    )
    rendered = config_to_toml(cfg)
    assert tomllib.loads(rendered)["data"]["processed_root"] == awkward
    saved = tmp_path / "resolved.toml"
    saved.write_text(rendered)
    assert load_config(saved) == cfg
    assert "weights_dir" not in config_to_toml(TagfConfig())
    assert load_config(_write(tmp_path / "default.toml", config_to_toml(TagfConfig()))) == TagfConfig()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("key", "value", "hint"),
    [
        ("fold", "1", "choose the run's fold with --fold"),
        ("emotion", "'arousal'", "choose the run's emotion with --emotion"),
        ("face_size", "48", r"faces are stored at 48×48 \(tagf_core.data.layout.FACE_SIZE\)"),
    ],
)
def test_a_retired_setting_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str, hint: str
) -> None:
    config_file = _write(tmp_path / "old.toml", f"[data]\n{key} = {value}\n")
    with pytest.raises(TagfError, match=f"^{config_file}: data.{key} is no longer a setting: {hint}$"):
        load_config(config_file)
    with pytest.raises(TagfError, match=f"^data.{key} is no longer a setting: {hint}$"):
        load_config(overrides={"data": {key: 1}})
    load_config(overrides={"data": {key: None}})  # a flag not given is not a setting
    monkeypatch.setenv(f"TAGF_DATA__{key.upper()}", "1")
    with pytest.raises(TagfError, match=f"^environment variable TAGF_DATA__{key.upper()}: data.{key} is no longer"):
        load_config()


def test_several_retired_settings_are_one_line(tmp_path: Path) -> None:
    config_file = _write(tmp_path / "old.toml", "[data]\nfold = 0\nemotion = 'valence'\nface_size = 48\n")
    with pytest.raises(TagfError) as caught:
        load_config(config_file)
    assert "\n" not in str(caught.value)
    assert all(f"data.{key} is no longer a setting" in str(caught.value) for _, key in RETIRED_SETTINGS)


def test_drop_retired_settings_reads_an_old_run_config(tmp_path: Path) -> None:
    """The config.toml of an old run folder still validates once its retired keys are dropped."""
    old = read_toml(
        _write(
            tmp_path / "config.toml",
            "[data]\nprocessed_root = 'p'\nfold = 2\nemotion = 'arousal'\nface_size = 48\ncrop_size = 40\n"
            "[train]\nseed = 5\n",
        )
    )
    kept = drop_retired_settings(old)
    assert kept == {"data": {"processed_root": "p", "crop_size": 40}, "train": {"seed": 5}}
    assert old["data"]["fold"] == 2  # the input is left as it was
    cfg = TagfConfig.model_validate(kept)
    assert (cfg.data.processed_root, cfg.train.seed) == (Path("p"), 5)
    assert drop_retired_settings({}) == {}


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
    config_file = _write(tmp_path / "bool.toml", "[train]\nbatch_size = true\n")
    with pytest.raises(TagfError, match="train.batch_size: expected a number, not true/false"):
        load_config(config_file)
    monkeypatch.setenv("TAGF_TRAIN__SEED", "true")
    with pytest.raises(TagfError, match="train.seed"):
        load_config()


def test_a_list_that_is_not_json_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGF_TRAIN__MILESTONES", "[0, x]")
    with pytest.raises(TagfError, match=r"lists are JSON") as caught:
        load_config()
    assert "\n" not in str(caught.value)


def test_field_descriptions_read_as_help_text() -> None:
    """The CLI reuses the descriptions as help: no default value inside the text (it is shown separately)."""
    for section in TagfConfig.model_fields.values():
        assert section.annotation is not None
        for name, field in section.annotation.model_fields.items():
            assert field.description, name
            assert "default" not in field.description.lower(), name
            assert field.description.endswith("."), name
