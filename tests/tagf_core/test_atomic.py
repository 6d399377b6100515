"""Atomic writes work for every legal name: the temporary sibling's name stays short."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagf_core.atomic import atomic_folder, atomic_write

LONGEST = 255  # bytes in a name on ext4, tmpfs, xfs, btrfs


@pytest.mark.parametrize("name", ["v" * (LONGEST - 4) + ".csv", "é" * 125 + ".csv"], ids=["ascii", "two-byte"])
def test_a_file_with_a_name_of_the_longest_legal_length_is_written(tmp_path: Path, name: str) -> None:
    assert len(name.encode()) in (LONGEST, LONGEST - 1)
    path = tmp_path / name
    atomic_write(path, "old\n")
    atomic_write(path, "new\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_a_folder_with_a_name_of_the_longest_legal_length_is_published_and_replaced(tmp_path: Path) -> None:
    target = tmp_path / ("t" * LONGEST)
    for text in ("first", "second"):
        with atomic_folder(target) as staging:
            (staging / "arrays.txt").write_text(text)
    assert (target / "arrays.txt").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
