"""The reference's learning-rate schedule: a per-batch sawtooth warm-up, then plateau decay on validation CCC.

A re-implementation of ``MyWarmupScheduler`` (ref §3.3) that holds only numbers: it computes the lr and the caller
writes it into the optimizer (``apply``), so its state is a small JSON-able dict. The reference builds a new
scheduler at every backbone release (ref §3.2, §3.4); here that is ``restart(epoch)``.

Per (re)initialisation at ``init_epoch``, with relative epoch r = epoch − init_epoch, base lr lr0, W warm-up
epochs (5) and N train batches:

* r < W, before batch b: lr = b · lr0 · (r+1) / (N·W·W), a sawtooth that climbs from 0 to about (r+1)/W² · lr0
  within each epoch (0.04, 0.08, …, 0.20 × lr0 for W = 5);
* end of r = W−1: lr = lr0;
* r ≥ W: plateau on validation CCC (mode "max"); the 6th consecutive non-improving epoch (count > patience 5)
  multiplies lr by 0.1, with no clamp at a minimum lr, and the count restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch.optim import Optimizer

REDUCE_EPS = 1e-11
"""A reduction smaller than this is skipped, as the reference's ``_reduce_lr`` does (its eps, ref §3.3)."""


def zero_lr_epochs(*, warmup_epochs: int, num_batches: int) -> list[int]:
    """The epochs after a (re)initialisation, counted from it, in which every train batch has lr 0.

    The warm-up's lr before batch b is b · lr0 · (r+1) / (N·W·W) (module docstring): 0 on batch 0 only, so a
    whole epoch trains at lr 0 exactly when it has one batch, for each of the W warm-up epochs (ref §3.3).
    """
    return list(range(warmup_epochs)) if num_batches == 1 else []


class WarmupPlateauSchedule:
    """Learning rate of ``MyWarmupScheduler`` (ref §3.3), without owning the optimizer.

    Use per epoch::

        for batch_index, batch in enumerate(train_batches):
            schedule.lr_for_batch(epoch, batch_index, len(train_batches)); schedule.apply(optimizer)
            ...
        schedule.end_epoch(epoch, val_ccc, best_before)   # then apply again before the next batch

    Args:
        base_lr: lr0, the Adam learning rate (ref §3.2).
        warmup_epochs: W, the reference's ``min_num_epochs`` (ref §3.3).
        patience: non-improving epochs tolerated; the reduction comes on the (patience+1)-th.
        factor: multiplier of a plateau reduction.
    """

    def __init__(self, *, base_lr: float, warmup_epochs: int, patience: int, factor: float) -> None:
        if base_lr <= 0:
            raise ValueError(f"base_lr {base_lr} must be positive")
        if warmup_epochs < 0 or patience < 0:
            raise ValueError(f"warmup_epochs {warmup_epochs} and patience {patience} must be >= 0")
        if not 0 < factor < 1:
            raise ValueError(f"factor {factor} must lie in (0, 1)")
        self.base_lr = base_lr
        self.warmup_epochs = warmup_epochs
        self.patience = patience
        self.factor = factor
        self.init_epoch = 0
        self.lr = base_lr
        self.best: float | None = None
        self.bad_epochs = 0
        self.restart(0)

    def restart(self, epoch: int) -> None:
        """(Re)initialise at ``epoch``: a new warm-up from there, lr back to base, plateau counters cleared.

        The reference creates a new scheduler (and Adam) at every release, the first at epoch 0 (ref §3.2, §3.4).
        """
        self.init_epoch = epoch
        self.lr = self.base_lr  # the new Adam starts at lr0; the first warm-up batch overwrites it (ref §3.3)
        self.best = None
        self.bad_epochs = 0

    def relative_epoch(self, epoch: int) -> int:
        """Epochs since the last (re)initialisation: 0 in the epoch of ``restart``.

        This is the reference's ``scheduler.relative_epoch`` as read at the start of an epoch (ref §3.4, §3.5).
        """
        return epoch - self.init_epoch

    def lr_for_batch(self, epoch: int, batch_index: int, num_batches: int) -> float:
        """The lr for train batch ``batch_index`` of ``num_batches`` in ``epoch``; it also becomes ``lr``.

        In warm-up the sawtooth value (module docstring; 0 on the first batch, as in the reference), after it the
        current plateau lr. Call before every train batch, then ``apply``.

        Raises:
            ValueError: ``epoch`` before the last restart, or a batch index outside [0, num_batches).
        """
        relative = self._checked_relative(epoch)
        if not 0 <= batch_index < num_batches:
            raise ValueError(f"batch_index {batch_index} is outside [0, {num_batches})")
        if relative < self.warmup_epochs:
            # ref §3.3: warmup_lr(init_lr, batch, N·W) computes b · lr0 · (r+1) / (N·W · W).
            warm = self.warmup_epochs
            self.lr = batch_index * self.base_lr * (relative + 1) / (num_batches * warm * warm)
        return self.lr

    def end_epoch(self, epoch: int, val_ccc: float, best_so_far: float) -> None:
        """Step after validating ``epoch``: end the warm-up, or count a plateau epoch and maybe reduce the lr.

        Args:
            epoch: the epoch just validated.
            val_ccc: its validation CCC.
            best_so_far: the best validation CCC of the epochs *before* this one, the value model selection
                compares ``val_ccc`` against. The reference sets ``scheduler.best`` to it before every step, so an
                epoch counts as improving exactly when it becomes the new best (ref §3.3, §3.5). Passing a best
                that already includes ``val_ccc`` would count every epoch as non-improving.

        Raises:
            ValueError: ``epoch`` before the last restart.
        """
        relative = self._checked_relative(epoch)
        if relative + 1 == self.warmup_epochs:
            self.lr = self.base_lr  # ref §3.3: the sawtooth ends; full lr from the next epoch on
        self.best = best_so_far
        if val_ccc > self.best:
            self.best = val_ccc
            self.bad_epochs = 0
        elif relative + 1 > self.warmup_epochs:  # ref §3.3: bad epochs count only after the warm-up
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:  # ref §3.3: "exceeds": the 6th bad epoch with patience 5
            reduced = self.lr * self.factor  # no clamp at min_lr (ref §3.3)
            if self.lr - reduced > REDUCE_EPS:
                self.lr = reduced
            self.bad_epochs = 0

    def apply(self, optimizer: Optimizer) -> None:
        """Write ``lr`` into every parameter group of ``optimizer``."""
        for group in optimizer.param_groups:
            group["lr"] = self.lr

    def state_dict(self) -> dict[str, Any]:
        """Settings and progress as plain JSON-able values (``best`` is None before the first ``end_epoch``)."""
        return {
            "base_lr": self.base_lr,
            "warmup_epochs": self.warmup_epochs,
            "patience": self.patience,
            "factor": self.factor,
            "init_epoch": self.init_epoch,
            "lr": self.lr,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned; the settings saved with it replace the constructor's.

        Raises:
            ValueError: a key is missing.
        """
        missing = sorted(set(self.state_dict()) - set(state))
        if missing:
            raise ValueError(f"schedule state lacks {', '.join(missing)}")
        self.base_lr = float(state["base_lr"])
        self.warmup_epochs = int(state["warmup_epochs"])
        self.patience = int(state["patience"])
        self.factor = float(state["factor"])
        self.init_epoch = int(state["init_epoch"])
        self.lr = float(state["lr"])
        self.best = None if state["best"] is None else float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])

    def _checked_relative(self, epoch: int) -> int:
        relative = self.relative_epoch(epoch)
        if relative < 0:
            raise ValueError(f"epoch {epoch} comes before the last restart at epoch {self.init_epoch}")
        return relative
