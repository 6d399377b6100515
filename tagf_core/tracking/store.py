"""The MLflow store a tracking URI names, opened safely: a new local SQLite store is created by one process at
a time.

A ``sqlite:///<file>`` store is one file, and MLflow leaves one thing to chance with it:

- two processes open a new store at once: MLflow's SQLAlchemy store creates its tables without a lock, and one
  process dies on ``table experiments already exists``. ``store_lock`` serialises that (and the get-or-create of
  the experiment and of a stamp's parent run, ``mlflow_tracker``) with an exclusive lock beside the database,
  ``.<file name>.lock``, which dies with its holder (``tagf_core.locks``).

A tracking server (http, https, databricks) or another database is opened as MLflow opens it: the server
serialises its own writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tagf_core.locks import exclusive_lock

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

SQLITE_PREFIX = "sqlite:///"


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working folder if relative), else None."""
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    path = tracking_uri[len(SQLITE_PREFIX) :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


@contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """Hold the store's lock for the block when it is a local SQLite file; nothing to hold for other stores.

    Not re-entrant: a block holding it must not open the store or take it again.

    Raises:
        TagfError: the lock file cannot be created beside the database (read-only folder, ...).
    """
    database = sqlite_file(tracking_uri)
    if database is None:
        yield
        return
    with exclusive_lock(database.parent / f".{database.name}.lock", f"opening MLflow store {database}", wait=True):
        yield


def open_client(tracking_uri: str) -> MlflowClient:
    """An ``MlflowClient`` on the store; a new SQLite store gets its tables from one process at a time.

    The folder of a ``sqlite:///`` store is created if missing, as MLflow would.
    """
    from mlflow.tracking import MlflowClient

    database = sqlite_file(tracking_uri)
    if database is None:
        return MlflowClient(tracking_uri)
    database.parent.mkdir(parents=True, exist_ok=True)  # for the lock file beside the database
    with store_lock(tracking_uri):
        return MlflowClient(tracking_uri)  # opens the file; creates the tables of a new store
