"""Training on full and read-only disks: one error naming the file, and nothing already written is lost."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tagf_core.errors import TagfError
from tagf_core.tracking.tracker import InMemoryTracker
from tagf_core.training.run import RunPaths, RunSpec


@pytest.fixture(scope="module")
def tiny(load_test_module: Callable[[Path], ModuleType]) -> ModuleType:
    """test_loop.py's tiny processed set, config and run."""
    return load_test_module(Path(__file__).with_name("test_loop.py"))


@pytest.fixture()
def processed(tiny: ModuleType, tmp_path: Path) -> Path:
    root = tmp_path / "processed"
    tiny._write_processed(root)
    return root


def _run(tiny: ModuleType, processed: Path, output_root: Path, **train: Any) -> Any:
    return tiny._run(tiny._config(processed, output_root, **train), InMemoryTracker())


def test_a_read_only_output_root_is_one_line_naming_it(
    tiny: ModuleType, processed: Path, tmp_path: Path, mounts: Any
) -> None:
    outputs = mounts.tmpfs(tmp_path / "outputs", 1 << 20, read_only=True)
    with pytest.raises(TagfError, match=rf"^{outputs}/test: cannot create the stamp folder \(Read-only file system\)$"):
        _run(tiny, processed, outputs, max_epochs=1)


def test_a_full_disk_at_the_checkpoint_is_one_line_and_keeps_the_last_checkpoint(
    tiny: ModuleType, processed: Path, tmp_path: Path, mounts: Any
) -> None:
    outputs = tmp_path / "outputs"
    _run(tiny, processed, outputs, max_epochs=1)  # how big the run's files are
    paths = RunPaths.of(outputs, RunSpec("test", 0, "valence"))
    checkpoint_size = paths.checkpoint.stat().st_size

    full = mounts.tmpfs(tmp_path / "full", 4 * checkpoint_size + (1 << 20))
    _run(tiny, processed, full, max_epochs=1)
    paths = RunPaths.of(full, RunSpec("test", 0, "valence"))
    kept = paths.checkpoint.read_bytes()
    mounts.fill(full, leave_bytes=checkpoint_size // 2)  # room for the small files, not for a checkpoint
    with pytest.raises(
        TagfError, match=rf"^{paths.checkpoint}: cannot write \(No space left on device\); the previous"
    ):
        tiny._run(tiny._config(processed, full, max_epochs=2), InMemoryTracker(), resume=True)
    assert paths.checkpoint.read_bytes() == kept  # the last good checkpoint is whole
    assert not list(paths.folder.glob(".*.tmp"))  # and the half-written one is gone

    (full / ".filler").unlink()  # space again: the run goes on from where it was
    assert tiny._run(tiny._config(processed, full, max_epochs=2), InMemoryTracker(), resume=True).epochs_run == 2


def test_frozen_training_on_a_read_only_processed_folder_names_it_and_runs_with_embeddings_root_elsewhere(
    tiny: ModuleType, processed: Path, tmp_path: Path, mounts: Any
) -> None:
    read_only = mounts.read_only_view(processed, tmp_path / "read-only")
    with pytest.raises(TagfError, match=r"Read-only file system\); point data.embeddings_root \(--embeddings-root\)"):
        _run(tiny, read_only, tmp_path / "outputs", max_epochs=1)

    cfg = tiny._config(read_only, tmp_path / "outputs", max_epochs=1)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"embeddings_root": tmp_path / "embeddings"})})
    assert tiny._run(cfg, InMemoryTracker()).epochs_run == 1
    assert list((tmp_path / "embeddings").glob("*/cache.json"))
    assert not (processed / "embeddings").exists()
    shutil.rmtree(tmp_path / "embeddings")


def test_an_embedding_cache_on_a_full_disk_is_one_line_not_a_crash(
    tiny: ModuleType, processed: Path, tmp_path: Path, mounts: Any
) -> None:
    small = mounts.tmpfs(tmp_path / "small", 64 * 1024)  # room for a trial or two of 512 + 128 floats per frame
    cfg = tiny._config(processed, tmp_path / "outputs", max_epochs=1)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"embeddings_root": small})})
    with pytest.raises(TagfError, match=rf"^{small}/.*: cannot write the embedding cache \(No space left on device\)"):
        tiny._run(cfg, InMemoryTracker())
