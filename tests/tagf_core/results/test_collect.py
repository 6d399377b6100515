"""tagf collect's core: the folds × emotions table, summary files and the ABAW submission, from run folders."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from tagf_cli.tables import render_model_table, render_table
from tagf_core.errors import TagfError
from tagf_core.results.collect import CollectedRuns, collect_runs, compare_models, read_extra_predictions
from tagf_core.results.submission import write_submission
from tagf_core.results.summary import write_model_comparison, write_summary

STAMP = "cv"
# best validation CCC per (fold, emotion); fold 2 has only valence
CCC = {(0, "valence"): 0.5, (0, "arousal"): 0.3, (1, "valence"): 0.7, (1, "arousal"): 0.6, (2, "valence"): 0.3}


def make_run(
    root: Path,
    fold: int,
    emotion: str,
    ccc: float,
    predictions: Mapping[str, Sequence[float]] | None = None,
    stamp: str = STAMP,
    model: str = "tagf",
) -> Path:
    """A finished run folder as the training loop leaves it (summary.json and unseen-partition predictions)."""
    folder = root / stamp / (f"fold{fold}-{emotion}" + ("" if model == "tagf" else f"-{model}"))
    (folder / "predictions" / "extra").mkdir(parents=True)
    summary = {
        "fold": fold,
        "emotion": emotion,
        "best_val_ccc": ccc,
        "best_epoch": 10 + fold,
        "run_id": f"r{fold}{emotion[0]}",
        **({} if model == "tagf" else {"model": model}),  # summaries from before baselines have no model key
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    for trial, values in (predictions or {}).items():
        (folder / "predictions" / "extra" / f"{trial}.txt").write_text("\n".join([emotion, *map(str, values)]) + "\n")
    return folder


def value(fold: int, emotion: str, frame: int) -> float:
    """A prediction that tells which run and frame it came from: fold 1 → 0.1, valence → +0.0, arousal → +0.5."""
    return round(fold * 0.1 + (0.5 if emotion == "arousal" else 0.0) + frame * 0.001, 6)


@pytest.fixture()
def outputs(tmp_path: Path) -> Path:
    """Five finished runs of stamp ``cv`` (trials ``a`` with 3 frames and ``b`` with 2), one unfinished."""
    root = tmp_path / "outputs"
    for (fold, emotion), ccc in CCC.items():
        predictions = {t: [value(fold, emotion, f) for f in range(1, n + 1)] for t, n in (("a", 3), ("b", 2))}
        make_run(root, fold, emotion, ccc, predictions)
    (root / STAMP / "fold2-arousal").mkdir()  # still training: no summary.json
    return root


def test_the_table_holds_every_finished_run_with_mean_std_and_p(outputs: Path) -> None:
    collected = collect_runs(outputs, STAMP)
    assert [(r.fold, r.emotion, r.best_val_ccc, r.best_epoch) for r in collected.runs] == [
        (0, "valence", 0.5, 10),
        (0, "arousal", 0.3, 10),
        (1, "valence", 0.7, 11),
        (1, "arousal", 0.6, 11),
        (2, "valence", 0.3, 12),
    ]
    assert collected.unfinished == ("fold2-arousal",)
    valence, arousal = collected.stats_of("valence"), collected.stats_of("arousal")
    assert valence is not None and arousal is not None
    assert valence.mean == pytest.approx(0.5) and valence.folds == 3
    assert valence.std == pytest.approx(np.sqrt(((0.5 - 0.5) ** 2 + 0.2**2 + 0.2**2) / 3))  # population std
    assert arousal.mean == pytest.approx(0.45) and arousal.std == pytest.approx(0.15)
    assert [(s.fold, s.score) for s in collected.scores] == [(0, pytest.approx(0.4)), (1, pytest.approx(0.65))]
    assert collected.mean_score == pytest.approx(0.525)
    best_valence, best_arousal = collected.best_run("valence"), collected.best_run("arousal")
    assert best_valence is not None and best_valence.fold == 1
    assert best_arousal is not None and best_arousal.run_id == "r1a"


def test_summary_files(outputs: Path, tmp_path: Path) -> None:
    csv_path, md_path = write_summary(collect_runs(outputs, STAMP), tmp_path / "report")
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["fold"] for r in rows] == ["0", "1", "2", "mean", "std"]
    assert rows[0] == {
        "fold": "0",
        "valence_ccc": "0.5000",
        "valence_epoch": "10",
        "arousal_ccc": "0.3000",
        "arousal_epoch": "10",
        "p": "0.4000",
        "valence_run_id": "r0v",
        "arousal_run_id": "r0a",
    }
    assert rows[2]["arousal_ccc"] == "" and rows[2]["p"] == ""
    assert (rows[3]["valence_ccc"], rows[3]["arousal_ccc"], rows[3]["p"]) == ("0.5000", "0.4500", "0.5250")
    assert (rows[4]["arousal_ccc"], rows[4]["p"]) == ("0.1500", "0.1250")

    markdown = md_path.read_text()
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert table[0] == "| fold | valence CCC | arousal CCC | P |"
    assert table[2] == "| 0 | 0.5000 (epoch 10) | 0.3000 (epoch 10) | 0.4000 |"
    assert table[4] == "| 2 | 0.3000 (epoch 12) | – | – |"
    assert table[5] == "| mean ± std | 0.5000 ± 0.1633 | 0.4500 ± 0.1500 | 0.5250 ± 0.1250 |"
    assert "fold2-arousal" in markdown


def test_render_table_shows_folds_and_mean(outputs: Path) -> None:
    console = Console(width=120, record=True)
    console.print(render_table(collect_runs(outputs, STAMP)))
    text = console.export_text()
    assert "0.7000 (epoch 11)" in text and "0.6500" in text
    assert "0.5000 ± 0.1633" in text and "0.5250 ± 0.1250" in text


def _rows(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    assert lines[0] == "image_location,valence,arousal"
    return [line.split(",") for line in lines[1:]]


def test_submission_without_sample_takes_the_best_fold_per_emotion(outputs: Path, tmp_path: Path) -> None:
    out = write_submission(collect_runs(outputs, STAMP), tmp_path / "submission" / "fold.txt", None)
    # both best runs are fold 1 (0.7 valence, 0.6 arousal)
    assert _rows(out) == [
        [f"{trial}/{frame:05d}.jpg", repr(value(1, "valence", frame)), repr(value(1, "arousal", frame))]
        for trial, n in (("a", 3), ("b", 2))
        for frame in range(1, n + 1)
    ]


def test_submission_picks_each_emotion_from_its_own_best_fold(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    make_run(root, 0, "valence", 0.9, {"a": [0.1, 0.2]})
    make_run(root, 1, "valence", 0.2, {"a": [0.8, 0.8]})
    make_run(root, 0, "arousal", 0.1, {"a": [0.8, 0.8]})
    make_run(root, 1, "arousal", 0.4, {"a": [-0.3, -0.4]})
    out = write_submission(collect_runs(root, STAMP), tmp_path / "sub.txt", None)
    assert _rows(out) == [["a/00001.jpg", "0.1", "-0.3"], ["a/00002.jpg", "0.2", "-0.4"]]


def test_submission_follows_the_sample_padding_and_truncating(outputs: Path, tmp_path: Path) -> None:
    sample = tmp_path / "sample.txt"
    # trial b: 4 rows for 2 predicted frames (pad with the last); trial a: 2 rows for 3 frames (truncate);
    # the sample's order (b before a) is kept
    locations = ["b/00001.jpg", "b/00002.jpg", "b/00003.jpg", "b/00004.jpg", "a/00001.jpg", "a/00002.jpg"]
    sample.write_text("image_location,valence,arousal\n" + "".join(f"{loc},,\n" for loc in locations))
    out = write_submission(collect_runs(outputs, STAMP), tmp_path / "sub.txt", sample)
    rows = _rows(out)
    assert [r[0] for r in rows] == locations
    frames_used = [1, 2, 2, 2, 1, 2]
    assert [float(r[1]) for r in rows] == [value(1, "valence", f) for f in frames_used]
    assert [float(r[2]) for r in rows] == [value(1, "arousal", f) for f in frames_used]


def test_a_sample_trial_without_predictions_is_named(outputs: Path, tmp_path: Path) -> None:
    sample = tmp_path / "sample.txt"
    sample.write_text("image_location,valence,arousal\na/00001.jpg,,\nzz-trial/00001.jpg,,\n")
    with pytest.raises(TagfError, match="zz-trial") as error:
        write_submission(collect_runs(outputs, STAMP), tmp_path / "sub.txt", sample)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "sub.txt").exists()


def test_a_missing_emotion_says_which_training_to_run(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    make_run(root, 0, "valence", 0.5, {"a": [0.1]})
    collected = collect_runs(root, STAMP)
    assert collected.scores == () and collected.mean_score is None
    with pytest.raises(TagfError, match=r"no finished arousal run.*tagf train --stamp cv --fold 0 --emotion arousal"):
        write_submission(collected, tmp_path / "sub.txt", None)


def test_missing_predictions_say_how_to_make_them(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    make_run(root, 0, "valence", 0.5, {"a": [0.1]})
    make_run(root, 0, "arousal", 0.5)  # finished, but its unseen-partition predictions are gone
    with pytest.raises(TagfError, match="tagf predict --stamp cv --fold 0 --emotion arousal --partition extra"):
        write_submission(collect_runs(root, STAMP), tmp_path / "sub.txt", None)


def test_prediction_files_must_be_for_their_emotion(tmp_path: Path) -> None:
    folder = make_run(tmp_path, 0, "valence", 0.5, {"a": [0.1, 0.2]})
    assert read_extra_predictions(folder, "valence")["a"].tolist() == [0.1, 0.2]
    with pytest.raises(TagfError, match="first line should be 'arousal', found 'valence'"):
        read_extra_predictions(folder, "arousal")


def test_a_stamp_without_finished_runs_names_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    (root / "empty" / "fold0-valence").mkdir(parents=True)
    with pytest.raises(TagfError, match=r"outputs/empty: no finished tagf runs.*fold0-valence"):
        collect_runs(root, "empty")
    with pytest.raises(TagfError, match=r"outputs/nope: no such stamp folder \(stamps there: empty\)"):
        collect_runs(root, "nope")


def test_a_broken_summary_is_named(tmp_path: Path) -> None:
    folder = make_run(tmp_path, 0, "valence", 0.5)
    (folder / "summary.json").write_text(json.dumps({"fold": 0, "emotion": "valence"}))
    with pytest.raises(TagfError, match=r"fold0-valence/summary.json: unreadable run summary \(missing key"):
        collect_runs(tmp_path, STAMP)


def test_collected_runs_are_frozen(outputs: Path) -> None:
    collected: CollectedRuns = collect_runs(outputs, STAMP)
    with pytest.raises(AttributeError):
        collected.stamp = "other"  # type: ignore[misc]


def test_baseline_runs_sit_beside_tagf_and_are_compared_model_by_model(outputs: Path) -> None:
    make_run(outputs, 0, "valence", 0.9, model="ridge")
    make_run(outputs, 0, "arousal", 0.8, model="ridge")
    make_run(outputs, 1, "valence", 0.2, model="concat")
    tagf = collect_runs(outputs, STAMP)
    assert {r.model for r in tagf.runs} == {"tagf"} and len(tagf.runs) == 5  # the TAGF table is unchanged
    ridge = collect_runs(outputs, STAMP, "ridge")
    assert [(r.fold, r.emotion, r.best_val_ccc) for r in ridge.runs] == [(0, "valence", 0.9), (0, "arousal", 0.8)]
    assert ridge.mean_score == pytest.approx(0.85)
    models = compare_models(outputs, STAMP)
    assert [c.model for c in models] == ["tagf", "concat", "ridge"]
    csv_path, md_path = write_model_comparison(models, outputs / STAMP)
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["model"] for r in rows] == ["tagf", "concat", "ridge"]
    assert rows[0]["valence_ccc"] == f"{np.mean([0.5, 0.7, 0.3]):.4f}" and rows[0]["valence_folds"] == "3"
    assert rows[1]["arousal_ccc"] == "" and rows[1]["p"] == ""
    assert "| ridge | 0.9000 (1 fold) | 0.8000 (1 fold) | 0.8500 |" in md_path.read_text()
    Console(width=120, record=True).print(render_model_table(models))


def test_collecting_a_model_without_runs_names_the_models_there(outputs: Path) -> None:
    make_run(outputs, 0, "valence", 0.9, model="ridge-audio")
    with pytest.raises(TagfError, match=r"no finished concat runs.*runs of tagf, ridge-audio are there"):
        collect_runs(outputs, STAMP, "concat")


def test_a_summary_whose_model_disagrees_with_its_folder_is_refused(outputs: Path) -> None:
    folder = make_run(outputs, 0, "valence", 0.9, model="ridge")
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "model": "concat"}))
    with pytest.raises(TagfError, match="model concat, but lies in fold0-valence-ridge"):
        collect_runs(outputs, STAMP, "ridge")


def test_a_sample_file_with_a_byte_order_mark_is_read_as_without(outputs: Path, tmp_path: Path) -> None:
    sample = tmp_path / "sample.txt"
    sample.write_bytes(b"\xef\xbb\xbfimage_location,valence,arousal\r\na/00001.jpg,,\r\nb/00002.jpg,,\r\n")
    rows = _rows(write_submission(collect_runs(outputs, STAMP), tmp_path / "sub.txt", sample))
    assert [r[0] for r in rows] == ["a/00001.jpg", "b/00002.jpg"]


def test_a_sample_file_that_is_not_utf8_is_one_line_naming_it(outputs: Path, tmp_path: Path) -> None:
    sample = tmp_path / "sample.txt"
    sample.write_bytes("image_location,valence,arousal\na/00001.jpg,,\n".encode("utf-16"))
    with pytest.raises(TagfError) as refused:
        write_submission(collect_runs(outputs, STAMP), tmp_path / "sub.txt", sample)
    assert str(refused.value) == f"{sample}: sample file is not UTF-8 text (invalid start byte at byte 0)"
    assert not (tmp_path / "sub.txt").exists()


def make_started_run(root: Path, name: str, stamp: str = STAMP) -> Path:
    """A run that started and was killed or crashed: run.json written, no summary.json."""
    folder = root / stamp / name
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"run_id": f"id-{name}", "debug": False}) + "\n")
    return folder


def test_a_killed_emotion_is_to_be_resumed_not_trained_again(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    make_run(root, 1, "valence", 0.5, {"a": [0.1]})
    make_started_run(root, "fold1-arousal")  # `tagf train` would refuse it: the folder exists
    with pytest.raises(TagfError) as error:
        write_submission(collect_runs(root, STAMP), tmp_path / "sub.txt", None)
    assert str(error.value).endswith("run `tagf resume --stamp cv --fold 1 --emotion arousal`")


def test_a_killed_baseline_is_resumed_with_its_model(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    make_run(root, 0, "arousal", 0.5, {"a": [0.1]}, model="ridge")
    make_started_run(root, "fold2-valence-ridge")
    with pytest.raises(TagfError, match=r"run `tagf resume --stamp cv --fold 2 --emotion valence --model ridge`$"):
        write_submission(collect_runs(root, STAMP, "ridge"), tmp_path / "sub.txt", None)


def test_a_stamp_without_finished_runs_says_how_to_finish_each(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    make_started_run(root, "fold0-valence")
    (root / STAMP / "fold0-arousal").mkdir()  # a start that left no run.json: nothing to resume
    with pytest.raises(TagfError) as error:
        collect_runs(root, STAMP)
    message = str(error.value)
    assert "fold0-arousal: `tagf train --stamp cv --fold 0 --emotion arousal --overwrite`" in message
    assert "fold0-valence: `tagf resume --stamp cv --fold 0 --emotion valence`" in message
