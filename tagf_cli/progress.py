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


class EpochProgress:
    """Rich bars for epochs and batches, and one concise line per epoch; the engine's TrainingCallbacks."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        )
        self._epochs: TaskID | None = None
        self._batches: TaskID | None = None
        self._embedding: TaskID | None = None

    def __enter__(self) -> EpochProgress:
        self._bar.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._bar.stop()

    def on_embedding_start(self, trials: int) -> None:
        self._embedding = self._bar.add_task("embedding trials (frozen backbones, cached)", total=trials)

    def on_embedded(self, trial: str) -> None:
        if self._embedding is not None:
            self._bar.advance(self._embedding)

    def on_epoch_start(self, epoch: int, max_epochs: int, num_batches: int) -> None:
        if self._epochs is None:
            self._epochs = self._bar.add_task(f"{self.name} epochs", total=max_epochs, completed=epoch)
            self._batches = self._bar.add_task("batches", total=num_batches)
        assert self._batches is not None
        self._bar.reset(self._batches, total=num_batches)

    def on_batch(self) -> None:
        if self._batches is not None:
            self._bar.advance(self._batches)

    def on_epoch_end(self, row: dict[str, float]) -> None:
        if self._epochs is not None:
            self._bar.advance(self._epochs)
        self._bar.console.print(
            f"{self.name} epoch {int(row['epoch'])}: train loss {row['train/loss']:.4f} ccc {row['train/ccc']:.4f} | "
            f"val ccc {row['val/ccc']:.4f} rmse {row['val/rmse']:.4f} | lr {row['lr']:.2e} | "
            f"stage {int(row['release_stage'])} | best epoch {int(row['best_epoch'])} | {row['epoch_seconds']:.1f}s"
        )
