"""Exclusive file locks that die with their holder: ``flock`` on a small file naming who holds it.

The kernel releases an ``flock`` when its process dies, however it dies (SIGKILL, OOM killer, a lost node's
NFS lease), so a lock left by a dead process is never in the way: a stale lock file is simply taken over.
The file records the holder (host, pid, when, what) for the error message of whoever finds the lock taken.

A holder removes the file when it releases the lock. Removing a lock file is racy in general (another process
may have opened the old file and lock it after the unlink); ``_lock_file`` closes that gap by checking, once
locked, that the path still names the file it locked, and starting over otherwise.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tagf_core.errors import TagfError


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock, as the holder wrote it into the lock file."""

    host: str
    pid: int
    since: str
    purpose: str

    def describe(self) -> str:
        return f"{self.purpose} (pid {self.pid} on {self.host}, since {self.since})"


class LockTaken(TagfError):
    """The lock is held by another live process."""

    def __init__(self, path: Path, holder: LockHolder | None) -> None:
        self.path, self.holder = path, holder
        who = holder.describe() if holder is not None else "another process"
        super().__init__(f"{path}: locked by {who}")


def _read_holder(handle_fd: int) -> LockHolder | None:
    try:
        raw = os.pread(handle_fd, 4096, 0)
        record = json.loads(raw.decode("utf-8"))
        return LockHolder(str(record["host"]), int(record["pid"]), str(record["since"]), str(record["purpose"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # being written this instant, or not ours: the caller still knows the lock is taken


def _lock_file(path: Path, *, wait: bool) -> int:
    """Open ``path`` and lock it exclusively; returns the file descriptor holding the lock."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockTaken(path, holder) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the previous holder removed it meanwhile: lock the file that is there now


@contextmanager
def exclusive_lock(path: Path, purpose: str, *, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the ``with`` block; the file is removed on release.

    ``purpose`` says what the holder does (shown to whoever finds the lock taken). With ``wait=False`` a lock
    held by a live process raises ``LockTaken`` at once; with ``wait=True`` this blocks until it is free.

    Raises:
        LockTaken: the lock is held by another live process (``wait=False``).
        TagfError: the lock file cannot be created (read-only folder, no space, ...).
    """
    path = Path(path)
    try:
        fd = _lock_file(path, wait=wait)
    except LockTaken:
        raise
    except OSError as e:
        raise TagfError(f"{path}: cannot create the lock file ({e.strerror or e})") from e
    try:
        holder = {
            "host": socket.gethostname(), "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %z"), "purpose": purpose,
        }  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode("utf-8"), 0)
        yield
    finally:
        with suppress(OSError):
            os.unlink(path)  # still locked: nobody can take it between this unlink and the close
        os.close(fd)


def lock_holder(path: Path) -> LockHolder | None:
    """The live holder of the lock at ``path``, or None when nobody holds it (no file, or a dead holder's)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd) or LockHolder("?", 0, "?", "unknown")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
