"""Atomic writes: a file or folder that matters is either the old one or the whole new one, never half."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def default_mode(folder: bool = False) -> int:
    """The permissions a plain ``open``/``mkdir`` would give under the current umask.

    ``tempfile`` creates private (0600/0700) files and folders; shared outputs (a dataset on a lab server)
    must get the usual permissions once renamed into place.
    """
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


NAME_KEPT_IN_TEMPORARY = 100
"""At most this many bytes of a name are kept in its temporary sibling's (``.<name>.<random>.tmp``): a legal
name of up to 255 bytes would otherwise give a temporary name the file system refuses (ENAMETOOLONG)."""


def temporary_prefix(name: str) -> str:
    """``.<name>.``, the name cut to NAME_KEPT_IN_TEMPORARY bytes (whole characters), for ``tempfile``'s prefix."""
    kept = name[:NAME_KEPT_IN_TEMPORARY]
    while len(os.fsencode(kept)) > NAME_KEPT_IN_TEMPORARY:
        kept = kept[:-1]
    return f".{kept}."


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp_name = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, default_mode())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(
    target: Path,
    *,
    staging_parent: Path | None = None,
    keep_existing: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """Stage a folder and rename it to ``target`` only when the ``with`` block ends without an error.

    Yields an empty hidden folder beside ``target`` (or under ``staging_parent``, same file system) with the
    permissions a plain ``mkdir`` would give. On an error it is deleted and ``target`` is untouched. On success:

    - if ``target`` exists and ``keep_existing(target)`` holds (another process published the same thing
      meanwhile), the staged folder is dropped and ``target`` kept as it is;
    - otherwise an existing ``target`` is moved aside, the staged folder renamed into place, and the old one
      deleted last (put back if the rename fails). A kill in between leaves ``target`` absent or whole, never half.
    """
    target = Path(target)
    parent = Path(staging_parent) if staging_parent is not None else target.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(target.name), suffix=".partial", dir=parent))
    try:
        os.chmod(staging, default_mode(folder=True))  # mkdtemp makes it private; datasets may be shared
        yield staging
        _publish_folder(staging, target, parent, keep_existing)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _publish_folder(staging: Path, target: Path, parent: Path, keep_existing: Callable[[Path], bool] | None) -> None:
    if target.exists() and keep_existing is not None and keep_existing(target):
        shutil.rmtree(staging, ignore_errors=True)
        return
    previous: Path | None = None
    if target.exists():
        # rename cannot replace a non-empty folder: move the old one aside onto an empty placeholder first
        previous = Path(tempfile.mkdtemp(prefix=temporary_prefix(target.name), suffix=".old", dir=parent))
        os.replace(target, previous / target.name)
    try:
        os.rename(staging, target)
    except OSError:
        if keep_existing is not None and target.is_dir() and keep_existing(target):
            shutil.rmtree(staging, ignore_errors=True)  # published by another process meanwhile: keep theirs
        else:
            if previous is not None and not target.exists():
                os.replace(previous / target.name, target)  # put the old one back rather than leave nothing
            raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
