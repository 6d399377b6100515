"""Atomic writes: a file that matters is either the old one or the whole new one, never half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def default_mode(folder: bool = False) -> int:
    """The permissions a plain ``open``/``mkdir`` would give under the current umask.

    ``tempfile`` creates private (0600/0700) files and folders; shared outputs (a dataset on a lab server)
    must get the usual permissions once renamed into place.
    """
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
