"""generate_dataset: reproducible bytes, refused arguments, and an OUT that is never left half-written."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

import tagf_synth.generate
from tagf_core.errors import TagfError
from tagf_synth import SynthReport, generate_dataset


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_arguments_give_byte_identical_files(
    layout_dataset: SynthReport, layout_args: dict[str, Any], tmp_path: Path
) -> None:
    again = generate_dataset(tmp_path / "again", **layout_args)
    first, second = file_bytes(layout_dataset.out), file_bytes(again.out)
    assert sorted(first) == sorted(second)
    differing = [name for name in first if first[name] != second[name]]
    assert not differing, f"files differ between two runs with the same seed: {differing[:10]}"


def test_another_seed_gives_other_content_in_the_same_layout(
    layout_dataset: SynthReport, layout_args: dict[str, Any], tmp_path: Path
) -> None:
    other = generate_dataset(tmp_path / "other", **{**layout_args, "seed": layout_args["seed"] + 1})
    assert (other.train, other.validate, other.test) == (
        layout_dataset.train,
        layout_dataset.validate,
        layout_dataset.test,
    )
    first, second = file_bytes(layout_dataset.out), file_bytes(other.out)
    for name in layout_dataset.videos:
        assert first[f"videos/{name}"] != second[f"videos/{name}"], name
    for trial in layout_dataset.train:
        annotation = f"Annotations/VA_Estimation_Challenge/Train_Set/{trial}.txt"
        assert first[annotation] != second[annotation], trial


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"trials": 0}, "trials 0"),
        ({"trials": -3}, "trials -3"),
        ({"trials": 2.5}, "trials 2.5"),
        ({"trials": True}, "trials True"),
        ({"trials": 1000}, "trials 1000"),
        ({"seconds": 0.0}, "seconds 0.0"),
        ({"seconds": -1.0}, "seconds -1.0"),
        ({"seconds": 1.5}, "seconds 1.5"),
        ({"seconds": math.nan}, "seconds nan"),
        ({"seconds": math.inf}, "seconds inf"),
        ({"seconds": 601.0}, "seconds 601.0"),
        ({"seed": -1}, "seed -1"),
        ({"seed": 1.0}, "seed 1.0"),
    ],
)
def test_invalid_arguments_raise_a_one_line_tagf_error(tmp_path: Path, arguments: dict[str, Any], named: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(TagfError) as error:
        generate_dataset(out, **arguments)
    message = str(error.value)
    assert named in message and "\n" not in message
    assert any(word in message for word in ("give", "at least", "at most", "must"))
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_file_at_out_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("mine", encoding="utf-8")
    with pytest.raises(TagfError, match="not a folder"):
        generate_dataset(out, trials=1, seconds=2.0)
    assert out.read_text(encoding="utf-8") == "mine"


def test_a_foreign_non_empty_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "real_data.txt").write_text("precious", encoding="utf-8")
    with pytest.raises(TagfError, match="not empty"):
        generate_dataset(out, trials=1, seconds=2.0)
    assert [p.name for p in out.iterdir()] == ["real_data.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"foo": 1}', 'no "format": "tagf-synth" in it'),
        ('{"format": "other"}', "its format is 'other', not 'tagf-synth'"),
        ("not json", "not JSON text: Expecting value: line 1 column 1 (char 0)"),
    ],
)
def test_a_foreign_synth_json_is_named_as_what_it_is_and_its_folder_left_alone(
    tmp_path: Path, content: str, problem: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "synth.json").write_text(content, encoding="utf-8")
    with pytest.raises(TagfError) as refused:
        generate_dataset(out, trials=1, seconds=2.0)
    assert str(refused.value) == (
        f"{out / 'synth.json'}: not a tagf synth record ({problem}), so {out} is not a previous `tagf synth` "
        "output; give a new or empty folder"
    )
    assert [p.name for p in out.iterdir()] == ["synth.json"]


def test_an_empty_folder_is_filled(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    report = generate_dataset(out, trials=1, seconds=2.0)
    assert report.train == ["synth-01-30-288x144"] and not report.validate and not report.test
    assert (out / "synth.json").is_file() and (out / "videos" / "synth-01-30-288x144.mp4").is_file()


def test_a_previous_synth_output_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate_dataset(out, trials=2, seconds=2.0, seed=1)
    (out / "leftover.txt").write_text("from the old run", encoding="utf-8")
    report = generate_dataset(out, trials=1, seconds=2.0, seed=2)
    assert not (out / "leftover.txt").exists()
    assert json.loads((out / "synth.json").read_text(encoding="utf-8"))["arguments"]["seed"] == 2
    assert report.files == sum(1 for p in out.rglob("*") if p.is_file())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "old copy or staging folder left behind"


def test_a_failed_run_leaves_nothing_at_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: object) -> None:
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(tagf_synth.generate, "_write_test_set_files", fail)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="killed mid-way"):
        generate_dataset(out, trials=2, seconds=2.0)
    assert not out.exists()
    assert not list(tmp_path.iterdir()), "staging folder left behind"


def test_a_failed_run_keeps_the_previous_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    generate_dataset(out, trials=1, seconds=2.0, seed=7)
    before = file_bytes(out)

    def fail(*_args: object) -> None:
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(tagf_synth.generate, "_write_test_set_files", fail)
    with pytest.raises(RuntimeError):
        generate_dataset(out, trials=1, seconds=2.0, seed=8)
    assert file_bytes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
