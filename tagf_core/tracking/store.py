"""The MLflow store a tracking URI names, opened safely: a local SQLite store is checked, and created by one
process at a time.

A ``sqlite:///<file>`` store is one file, and three things go wrong with it that MLflow leaves to chance:

- its folder is missing (a typo in the URI): MLflow would silently create the folder; ``open_client`` refuses
  in one line naming the folder;
- the file is not an MLflow store (garbage bytes, another program's file, a folder): MLflow shows a page of
  SQLAlchemy traceback; ``open_client`` says so in one line naming the file;
- two processes open a new store at once: MLflow's SQLAlchemy store creates its tables without a lock, and one
  process dies on ``table experiments already exists``. ``store_lock`` serialises that (and the get-or-create of
  the experiment and of a stamp's parent run, ``mlflow_tracker``) with an exclusive lock beside the database,
  ``.<file name>.lock``, which dies with its holder (``tagf_core.locks``).

A tracking server (http, https, databricks) or another database is opened as MLflow opens it: the server
serialises its own writes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tagf_core.errors import TagfError
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


def check_sqlite_folder(tracking_uri: str) -> None:
    """Refuse a ``sqlite:///`` URI whose folder does not exist (MLflow would create it, hiding a typo).

    Raises:
        TagfError: the folder is missing, or is not a folder; one line naming it.
    """
    database = sqlite_file(tracking_uri)
    if database is None:
        return
    folder = database.parent.absolute()
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "no such folder"
        raise TagfError(
            f"{folder}: {what} for the MLflow store {database.name} (tracking URI {tracking_uri}); "
            "create the folder or fix the URI"
        )


def open_client(tracking_uri: str) -> MlflowClient:
    """An ``MlflowClient`` on the store; a new SQLite store gets its tables from one process at a time.

    Raises:
        TagfError: a ``sqlite:///`` URI whose folder is missing, or whose file is not a readable MLflow store.
    """
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    database = sqlite_file(tracking_uri)
    if database is None:
        return MlflowClient(tracking_uri, registry_uri=registry_uri(tracking_uri))
    check_sqlite_folder(tracking_uri)
    try:
        with store_lock(tracking_uri):
            return MlflowClient(tracking_uri, registry_uri=registry_uri(tracking_uri))  # creates a new store's tables
    except (sqlalchemy.exc.SQLAlchemyError, MlflowException) as e:
        raise TagfError(
            f"{database.absolute()}: not a readable MLflow store ({_reason(e)}); move it away to start a new "
            "store, or point MLFLOW_TRACKING_URI at another one"
        ) from e


def registry_uri(tracking_uri: str) -> str:
    """The model registry of a store: ``MLFLOW_REGISTRY_URI`` when set, else the store itself (MLflow would take
    its process-wide tracking URI, which may name another store)."""
    return os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri


def _reason(error: Exception) -> str:
    """The database's own words (``file is not a database``), not SQLAlchemy's page around them."""
    cause = getattr(error, "orig", None) or getattr(error, "message", None) or error
    lines = str(cause).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(error).__name__
