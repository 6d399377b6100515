"""A rich progress bar that appears only once the engine says how much work there is."""

from __future__ import annotations

from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class LazyProgress:
    """Use as a context manager; pass ``start`` and ``advance`` to the engine as callbacks.

    Nothing is drawn before ``start``, so an error found while the engine looks at its input
    stays the only line the user sees.
    """

    def __init__(self, description: str) -> None:
        self.description = description
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def start(self, total: int) -> None:
        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        )
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=total)

    def advance(self, *_: object) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task)

    def __enter__(self) -> LazyProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
