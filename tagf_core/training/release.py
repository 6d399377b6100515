"""Gradual release of backbone layers: when to unfreeze the next stage, and when training must end (ref §3.4).

A re-implementation of the reference's ``ResnetParamControl`` that holds only the release progress; the training
loop does the rest. Each trigger (the start of an epoch, ref §3.4) starts a new optimisation phase:

    if controller.should_release(epoch, schedule.lr, schedule.relative_epoch(epoch)):
        if controller.exhausted:
            break                       # ref §3.4: "no further parameters to release" ends training
        stage = controller.release(epoch)   # the stage unfrozen now; None when there is none (frozen backbones)
        # the loop: new Adam over the trainable parameters, schedule.restart(epoch), early stopping reset,
        # best weights reloaded (ref §3.2, §3.4, §3.5)

With the reference's settings the epoch-0 milestone releases stage 1, the next two lr triggers stages 2 and 3,
and the fourth trigger ends training. With frozen backbones (no stages) the epoch-0 milestone still starts the
first phase, which creates the optimizer, and the next trigger ends training. (The reference's
``-gradual_release 0`` never creates an optimizer and crashes, ref §3.4; this is the fix ref §8 asks for.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tagf_core.model.tagf import ReleaseStage


class ReleaseController:
    """Which backbone stage to release next, and whether a trigger should end training (ref §3.4).

    Args:
        stages: the stages in release order (``TAGFModel.release_stages()``), or none when the backbones stay
            frozen. The controller sets ``requires_grad`` on their parameters and nothing else.
        release_count: the most stages to release (reference 3); more than there are stages releases them all.
        milestones: epochs that trigger a release whatever the lr (reference (0,)).
        min_epochs: the lr trigger needs epoch ≥ min_epochs and relative epoch > min_epochs (reference 5).
        min_lr: the lr trigger fires once the lr is below this (reference 1e-8).
    """

    def __init__(
        self,
        stages: Sequence[ReleaseStage],
        *,
        release_count: int,
        milestones: Sequence[int],
        min_epochs: int,
        min_lr: float,
    ) -> None:
        if release_count < 0:
            raise ValueError(f"release_count {release_count} must be >= 0")
        self.stages = tuple(stages)
        self.release_count = release_count
        self.milestones = frozenset(milestones)
        self.min_epochs = min_epochs
        self.min_lr = min_lr
        self.phase_epochs: list[int] = []
        """The epoch of every trigger that started a phase, the stages' releases and a frozen start alike."""
        self.released = 0
        """How many stages have been released (the ``release_stage`` metric)."""

    @property
    def releasable(self) -> int:
        """Stages this run releases in all: ``release_count``, but no more than there are stages."""
        return min(self.release_count, len(self.stages))

    @property
    def started(self) -> bool:
        """Whether a trigger has started the first optimisation phase (the loop then holds an optimizer)."""
        return bool(self.phase_epochs)

    @property
    def exhausted(self) -> bool:
        """Whether the next trigger must end training: a phase has started and no stage is left to release.

        The reference ends training there with "no further parameters to release" (ref §3.4). Before the first
        trigger this is False even with no stages, so the first trigger always starts training.
        """
        return self.started and self.released >= self.releasable

    def should_release(self, epoch: int, lr: float, relative_epoch: int) -> bool:
        """Whether a release triggers at the start of ``epoch`` (ref §3.4).

        True when ``epoch`` is a milestone, or when ``lr`` < min_lr with epoch ≥ min_epochs and
        ``relative_epoch`` > min_epochs (the reference's exact condition); False at an epoch whose trigger was
        already handled, so calling it again after a release (or after a resume) does not release twice.

        Args:
            epoch: the epoch about to run.
            lr: the current learning rate (``WarmupPlateauSchedule.lr``, what the reference reads from Adam).
            relative_epoch: epochs since the last restart of the schedule (``schedule.relative_epoch(epoch)``).
        """
        if epoch in self.phase_epochs:
            return False
        if epoch in self.milestones:
            return True
        # relative_epoch guards the warm-up, whose sawtooth starts every epoch at lr 0 (ref §3.3).
        return lr < self.min_lr and epoch >= self.min_epochs and relative_epoch > self.min_epochs

    def release(self, epoch: int) -> ReleaseStage | None:
        """Start the phase triggered at ``epoch``: release the next stage, if one is left, and return it.

        Sets ``requires_grad=True`` on the stage's parameters. Returns None when no stage is left to release, which
        only happens at the first trigger with no stages (frozen backbones): that phase trains without the
        backbones. The caller then builds a new optimizer and restarts the schedule at ``epoch``, resets early
        stopping and reloads the best weights (ref §3.2, §3.4, §3.5).

        Raises:
            RuntimeError: ``exhausted``; the loop must end training instead (check it first).
        """
        if self.exhausted:
            raise RuntimeError("nothing left to release: the loop must end training when `exhausted` is True")
        self.phase_epochs.append(epoch)
        if self.released >= self.releasable:
            return None
        stage = self.stages[self.released]
        for parameter in stage.parameters:
            parameter.requires_grad_(True)
        self.released += 1
        return stage

    def state_dict(self) -> dict[str, Any]:
        """Progress as plain JSON-able values: phase epochs and the names of the released stages."""
        return {
            "phase_epochs": list(self.phase_epochs),
            "released": [list(stage.names) for stage in self.stages[: self.released]],
        }

    def load_state_dict(self, state: Mapping[str, Any], stages: Sequence[ReleaseStage] | None = None) -> None:
        """Restore progress and the model's trainable state: released stages get ``requires_grad=True`` again,
        the stages not yet released ``requires_grad=False``, so a resumed model matches the saved one.

        Args:
            state: what ``state_dict`` returned.
            stages: the stages of the model being resumed (``TAGFModel.release_stages()``); None keeps the
                constructor's.

        Raises:
            ValueError: a key is missing, or the saved released stages are not the first stages here (by name).
        """
        missing = sorted({"phase_epochs", "released"} - set(state))
        if missing:
            raise ValueError(f"release state lacks {', '.join(missing)}")
        if stages is not None:
            self.stages = tuple(stages)
        saved = [tuple(names) for names in state["released"]]
        here = [stage.names for stage in self.stages[: len(saved)]]
        if len(saved) > self.releasable or saved != here:
            raise ValueError(
                f"the saved run released stages {saved}, but this model releases {self.releasable} stage(s) "
                f"beginning {[stage.names for stage in self.stages[: self.releasable]]}"
            )
        self.phase_epochs = [int(epoch) for epoch in state["phase_epochs"]]
        self.released = len(saved)
        for index, stage in enumerate(self.stages):
            for parameter in stage.parameters:
                parameter.requires_grad_(index < self.released)
