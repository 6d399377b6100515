"""The `tagf` commands as a user runs them: output lines, files and exit codes."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from tagf_cli.app import app
from tagf_synth import SynthReport

runner = CliRunner()


def test_help_lists_the_data_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "synth" in result.output and "preprocess" in result.output


def test_synth_then_preprocess_end_to_end(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "processed"
    result = runner.invoke(app, ["synth", str(raw), "--trials", "6", "--seconds", "2", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert f"to {raw}" in result.output
    result = runner.invoke(app, ["preprocess", "--data-root", str(raw), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "6 trials done, 0 skipped (up to date), 0 failed" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert {t["partition"] for t in manifest["trials"]} == {"train", "validate", "extra"}
    again = runner.invoke(app, ["preprocess", "--data-root", str(raw), "--out", str(out), "--workers", "1"])
    assert "0 trials done, 6 skipped (up to date), 0 failed" in again.output


def test_a_failed_trial_is_reported_and_exits_1(synth_release: SynthReport, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(synth_release.out, raw)
    video = sorted((raw / "videos").glob("*.mp4"))[-1]
    video.write_bytes(b"garbage")
    result = runner.invoke(app, ["preprocess", "--data-root", str(raw), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert f"failed: {video.stem}: {video}: corrupt or unreadable video" in result.output
    assert "1 failed" in result.output


def test_usage_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    neither = runner.invoke(app, ["preprocess", "--out", str(tmp_path / "out")])
    assert neither.exit_code == 1
    assert neither.output.strip() == (
        "error: give exactly one of --data-root (a raw release) or --import-reference (reference output)"
    )
    missing = runner.invoke(app, ["preprocess", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert missing.exit_code == 1
    assert missing.output.strip() == f"error: {tmp_path / 'nowhere'}: data root is not a folder"
    bad_workers = runner.invoke(app, ["preprocess", "--data-root", str(tmp_path), "--workers", "-2"])
    assert bad_workers.exit_code == 1
    assert "preprocess.workers: Input should be greater than or equal to 0 (got -2)" in bad_workers.output
    assert "Traceback" not in bad_workers.output


def test_synth_refuses_bad_arguments_in_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", str(tmp_path / "raw"), "--trials", "0"])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "trials" in result.output


def test_import_reference_round_trips_arrays_made_by_preprocess(synth_release: SynthReport, tmp_path: Path) -> None:
    """Lay our output out as the reference code would (compacted_48/ + dataset_info.pkl), import it back."""
    processed = tmp_path / "processed"
    assert (
        runner.invoke(app, ["preprocess", "--data-root", str(synth_release.out), "--out", str(processed)]).exit_code
        == 0
    )
    manifest = json.loads((processed / "manifest.json").read_text())["trials"]
    reference = tmp_path / "reference"
    for record in manifest:
        source, target = processed / record["trial"], reference / "compacted_48" / record["trial"]
        target.mkdir(parents=True)
        for name in ("video.npy", "logmel.npy", "VA_continuous_label.npy"):
            if (source / name).exists():
                np.save(target / name, np.load(source / name))
    info = {
        "trial": [r["trial"] for r in manifest],
        "length": [r["length"] for r in manifest],
        "partition": [r["partition"] for r in manifest],
        "data_folder": "compacted_48",
    }
    (reference / "dataset_info.pkl").write_bytes(pickle.dumps(info))

    imported = tmp_path / "imported"
    result = runner.invoke(app, ["preprocess", "--import-reference", str(reference), "--out", str(imported)])
    assert result.exit_code == 0, result.output
    assert f"{len(manifest)} trials done" in result.output
    for record in manifest:
        for name in ("video.npy", "logmel.npy", "VA_continuous_label.npy"):
            ours = processed / record["trial"] / name
            if ours.exists():
                np.testing.assert_array_equal(np.load(imported / record["trial"] / name), np.load(ours))
    partitions = {r["trial"]: r["partition"] for r in json.loads((imported / "manifest.json").read_text())["trials"]}
    assert partitions == {r["trial"]: r["partition"] for r in manifest}


def test_help_text_and_defaults_come_from_the_config() -> None:
    from tagf_core.config import TrainConfig

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
    text = " ".join(result.output.replace("│", " ").split())
    field = TrainConfig.model_fields["max_epochs"]
    assert result.exit_code == 0
    assert f"{field.description} (config train.max_epochs; default: {field.default})" in text
