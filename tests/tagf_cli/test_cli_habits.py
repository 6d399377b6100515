"""CLI habits a user expects: --version, shell completion, help defaults, --set, --print-config, echoes, warnings."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagf_cli.app import app

runner = CliRunner()


def test_version_prints_the_installed_version_and_exits_0() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"tagf {importlib.metadata.version('tagf')}"


def test_shell_completion_is_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200", "TERM": "dumb"})
    assert result.exit_code == 0
    assert "--install-completion" in result.output and "--show-completion" in result.output
    # Typer's switch for tests: --show-completion takes the shell's name instead of detecting the parent process
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    shown = runner.invoke(app, ["--show-completion", "bash"])
    assert shown.exit_code == 0, shown.output
    assert "_TAGF_COMPLETE" in shown.output


LIBRARY_WARNINGS = """
import logging, warnings
from tagf_cli.app import configure_logging
configure_logging(verbose={verbose}, version=False)
import mlflow  # as a command does: imported after the CLI set up logging
logging.getLogger("mlflow.pytorch").warning(
    "Saving pytorch model by Pickle or CloudPickle format requires exercising caution because these formats "
    "rely on Python's object serialization mechanism, which can execute arbitrary code during deserialization."
)
logging.getLogger("mlflow.store").warning("a store warning")
logging.getLogger("alembic.runtime.migration").info("Running upgrade a -> b")  # a new sqlite store's migrations
warnings.warn("a library's future warning", FutureWarning)
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_mlflow_and_python_warnings_go_through_the_cli_logging(verbose: bool) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LIBRARY_WARNINGS.format(verbose=verbose)],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200", "TERM": "dumb"}, check=True,
    )  # fmt: skip
    assert done.stderr.strip() == ""  # before: MLflow's own handler and Python's warnings wrote here
    lines = [" ".join(line.split()) for line in done.stdout.splitlines() if line.strip()]
    assert "WARNING a store warning" in lines
    assert "WARNING <string>:12: FutureWarning: a library's future warning" in lines
    assert "exercising caution" not in done.stdout and "Running upgrade" not in done.stdout
    assert ("DEBUG mlflow: model logged in pickle format (its safety warning)" in lines) == verbose


def test_set_overrides_the_config_file_and_environment_and_flags_override_set(
    tmp_path: Path, write_run_config: Callable[[Path, int], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAGF_TRAIN__BATCH_SIZE", "6")  # the file says 4
    args = ["train", "--config", str(write_run_config(tmp_path, 2)), "--print-config"]
    result = runner.invoke(app, [*args, "--set", "train.batch_size=5", "--set", "train.learning_rate=2e-4",
                                 "--set", "model.video_tcn_channels=[8, 8]", "--set", "data.processed_root=elsewhere/x",
                                 "--set", "train.max_epochs=7", "--max-epochs", "3",
                                 "--set", f"train.output_root={tmp_path / 'outputs'}"])  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = tomllib.loads(result.output)
    assert printed["train"]["batch_size"] == 5 and printed["train"]["learning_rate"] == 2e-4
    assert printed["train"]["max_epochs"] == 3  # the explicit flag wins over --set
    assert printed["model"]["video_tcn_channels"] == [8, 8] and printed["data"]["processed_root"] == "elsewhere/x"
    assert printed["data"]["window_len"] == 16  # the file's other keys stay
    assert printed["train"]["output_root"] == str(tmp_path / "outputs")  # a path: no TOML literal, so text
    assert not (tmp_path / "outputs").exists()  # nothing trained


def test_print_config_is_the_resolved_config_as_toml_that_reads_back(tmp_path: Path) -> None:
    from tagf_core.config import TagfConfig, load_config

    result = runner.invoke(app, ["train", "--print-config"])
    assert result.exit_code == 0, result.output
    (tmp_path / "printed.toml").write_text(result.output)
    assert load_config(tmp_path / "printed.toml") == TagfConfig()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["train", "--set", "train.learnig_rate=1e-3"], "train.learnig_rate: unknown setting"),
        (["train", "--set", "trian.batch_size=4"], "trian: unknown setting"),
        (["train", "--set", "train.batch_size=abc"], "train.batch_size: "),
        (["train", "--set", "learning_rate"], "--set 'learning_rate': expected SECTION.KEY=VALUE"),
        (["train", "--set", "data.fold=3"], "data.fold"),
        (["preprocess", "--data-root", "x", "--set", "preprocess.workers=-1"], "preprocess.workers: "),
    ],
)
def test_a_bad_set_is_one_error_line_naming_it(args: list[str], named: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1 and result.output.startswith("error: ")
    assert named in result.output


def test_train_echoes_the_settings_that_differ_from_the_reference_before_training(
    tmp_path: Path, write_run_config: Callable[[Path, int], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write_run_config(tmp_path, 2)
    result = runner.invoke(
        app, ["train", "--config", str(config), "--data", "missing", "--set", "train.weight_decay=0.01"]
    )
    assert result.exit_code == 1  # no data: it stops before training, after the echo
    lines = result.output.splitlines()
    assert "train.learning_rate = 0.001 (reference 0.0001)" in lines
    assert "train.weight_decay = 0.01 (reference 0.001)" in lines
    assert "model.video_tcn_channels = [16, 16] (reference [512, 512, 256, 256])" in lines
    assert "data.processed_root = missing (default data/processed)" in lines  # not a reference setting
    assert "train.batch_size = 4 (reference 12)" in lines
    assert not any(line.startswith("train.min_learning_rate") for line in lines)  # unchanged: not echoed
    assert lines[-1].startswith("error: ")


@pytest.fixture(scope="module")
def one_batch_run(processed_copy: Path, write_run_config: Callable[[Path, int], Path]) -> str:
    """The output of a tiny frozen-mode `tagf train` whose training set is one batch, words joined by spaces."""
    workspace = processed_copy.parent
    config = write_run_config(workspace, 2)  # min_epochs = 1: a one-epoch warm-up
    result = runner.invoke(
        app,
        ["train", "--data", str(processed_copy), "--config", str(config), "--stamp", "habits",
         "--output-root", str(workspace / "outputs"), "--set", "train.batch_size=1000"],
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow.db'}", "COLUMNS": "200", "TERM": "dumb"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    return " ".join(result.output.split())


def test_one_warning_names_the_epochs_the_warm_up_trains_at_lr_0(one_batch_run: str) -> None:
    warning = "the learning rate stays 0 through epoch 0: the training set is one batch (train.batch_size 1000)"
    assert one_batch_run.count("the learning rate stays 0") == 1 and warning in one_batch_run
    assert one_batch_run.index(warning) < one_batch_run.index("epoch 0: train loss")  # said before it trains


def test_a_progress_bar_counts_the_trials_embedded_into_the_cache(one_batch_run: str) -> None:
    bar = re.search(r"embedding trials \(frozen backbones, cached\) ━+ (\d+)/(\d+)", one_batch_run)
    assert bar is not None and bar[1] == bar[2] and int(bar[2]) > 0
    assert "embedded " not in one_batch_run  # the bar replaces an info line per trial


def test_every_flag_backed_by_a_config_key_shows_its_description_and_built_in_default_whole() -> None:
    """rich reads ``[…]`` in help as markup and drops it ("Preprocessed data folder ." once): the whole help of
    every config-backed flag must survive, naming the built-in default of its key."""
    import typer.main

    from tagf_core.config import TagfConfig

    defaults = TagfConfig().model_dump(mode="json")
    group = typer.main.get_command(app)
    checked = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        wide, narrow = (
            runner.invoke(app, [name, "--help"], env={"COLUMNS": columns, "TERM": "dumb"}) for columns in ("200", "80")
        )
        assert wide.exit_code == 0 and narrow.exit_code == 0, wide.output
        shown, shown_narrow = (" ".join(r.output.replace("│", " ").split()) for r in (wide, narrow))
        for param in command.params:
            backed = re.search(r"\(config (\w+)\.(\w+); default: (.*)\)$", param.help or "")
            if backed is None:
                continue
            section, key, default = backed.groups()
            built_in = defaults[section][key]
            expected = (
                "none"
                if built_in is None
                else ", ".join(map(str, built_in))
                if isinstance(built_in, list)
                else str(built_in)
            )
            assert default == expected, f"{name} {param.opts}: help says default {default}, built-in is {expected}"
            assert " ".join(param.help.split()) in shown, f"{name} {param.opts}: help not shown whole"
            assert backed[0] in shown_narrow, f"{name} {param.opts}: config key and default cut at 80 columns"
            assert param.default is None, f"{name} {param.opts}: a second copy of the default"
            checked.append((name, max(param.opts, key=len)))
    assert (
        ("train", "--data") in checked
        and ("preprocess", "--out") in checked
        and ("collect", "--output-root") in checked
    )
