"""Gradual release (ref §3.4): the epoch-0 milestone, the lr trigger, exhaustion, frozen mode, resume."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import nn

from tagf_core.config import TrainConfig
from tagf_core.model.tagf import ReleaseStage
from tagf_core.training.release import ReleaseController
from tagf_core.training.schedule import WarmupPlateauSchedule

STAGE_NAMES = [("visual.a", "audio.a"), ("visual.b", "audio.b"), ("visual.c", "audio.c")]


def reference_controller(stages: Sequence[ReleaseStage], **overrides: Any) -> ReleaseController:
    """The controller with the reference's settings (the config's defaults), ``overrides`` changed."""
    train = TrainConfig()
    settings = {
        "release_count": train.release_count, "milestones": train.milestones, "min_epochs": train.min_epochs,
        "min_lr": train.min_learning_rate,
    }  # fmt: skip
    return ReleaseController(stages, **{**settings, **overrides})


def _frozen_stages() -> tuple[ReleaseStage, ...]:
    """Three stages of two frozen tensors each, like ``TAGFModel.release_stages()`` in miniature."""
    return tuple(
        ReleaseStage(names=names, parameters=tuple(nn.Parameter(torch.zeros(2), requires_grad=False) for _ in "va"))
        for names in STAGE_NAMES
    )


def _trainable(stages: tuple[ReleaseStage, ...]) -> list[list[bool]]:
    return [[p.requires_grad for p in stage.parameters] for stage in stages]


def test_milestone_releases_the_first_stage_at_epoch_0() -> None:
    stages = _frozen_stages()
    controller = reference_controller(stages)
    assert not controller.exhausted and not controller.started
    assert controller.should_release(0, lr=1e-4, relative_epoch=0)
    assert controller.release(0) is stages[0]
    assert _trainable(stages) == [[True, True], [False, False], [False, False]]
    assert controller.released == 1 and controller.started
    assert not controller.should_release(0, lr=1e-4, relative_epoch=0)  # handled: asking again releases nothing


def test_lr_trigger_needs_the_minimum_epochs() -> None:
    controller = reference_controller(_frozen_stages(), milestones=(0,), min_epochs=5, min_lr=1e-8)
    controller.release(0)
    assert not controller.should_release(1, lr=1e-4, relative_epoch=1)
    assert not controller.should_release(5, lr=1e-9, relative_epoch=5)  # relative epoch must exceed 5
    assert not controller.should_release(4, lr=1e-9, relative_epoch=6)  # epoch must reach 5
    assert controller.should_release(6, lr=1e-9, relative_epoch=6)
    assert not controller.should_release(40, lr=1e-8, relative_epoch=30)  # strictly below min_lr
    assert not controller.should_release(40, lr=1e-4 * 0.1**4, relative_epoch=30)  # 1.0000000000000004e-8


def test_milestones_other_than_zero_trigger_whatever_the_lr() -> None:
    controller = reference_controller(_frozen_stages(), milestones=(0, 3))
    controller.release(0)
    assert controller.should_release(3, lr=1e-4, relative_epoch=3)
    assert not controller.should_release(2, lr=1e-4, relative_epoch=2)


def test_release_count_exhaustion() -> None:
    stages = _frozen_stages()
    controller = reference_controller(stages, release_count=2)
    assert controller.release(0) is stages[0]
    assert not controller.exhausted
    assert controller.release(35) is stages[1]
    assert controller.exhausted and controller.released == 2
    assert _trainable(stages)[2] == [False, False]  # the third stage stays frozen
    assert controller.should_release(70, lr=1e-9, relative_epoch=35)  # the trigger still fires …
    with pytest.raises(RuntimeError, match="end training"):  # … and the loop must end training, not release
        controller.release(70)


def test_all_stages_released_then_exhausted() -> None:
    stages = _frozen_stages()
    controller = reference_controller(stages, release_count=3)
    assert [controller.release(epoch) for epoch in (0, 35, 70)] == list(stages)
    assert controller.exhausted and _trainable(stages) == [[True, True]] * 3


def test_frozen_mode_starts_at_the_milestone_and_ends_at_the_next_trigger() -> None:
    controller = reference_controller(())
    assert not controller.exhausted  # the first trigger starts training even with nothing to release
    assert controller.should_release(0, lr=1e-4, relative_epoch=0)
    assert controller.release(0) is None
    assert controller.started and controller.released == 0
    assert controller.exhausted
    assert controller.should_release(35, lr=1e-9, relative_epoch=35)  # next trigger: the loop ends training


def test_release_count_zero_behaves_as_frozen_mode() -> None:
    stages = _frozen_stages()
    controller = reference_controller(stages, release_count=0)
    assert controller.release(0) is None
    assert controller.exhausted and _trainable(stages) == [[False, False]] * 3


@pytest.mark.parametrize(
    ("stages", "release_epochs", "end_epoch"),
    [(_frozen_stages(), [0, 35, 70], 105), ((), [0], 35)],
    ids=["release", "frozen"],
)
def test_with_the_schedule_a_stalled_run_releases_at_epochs_0_35_70(
    stages: tuple[ReleaseStage, ...], release_epochs: list[int], end_epoch: int
) -> None:
    # ref §3.4: after each start, 5 warm-up + 5 × 6 bad epochs bring the lr below 1e-8
    controller, schedule = (
        reference_controller(stages),
        WarmupPlateauSchedule(base_lr=1e-4, warmup_epochs=5, patience=5, factor=0.1),
    )
    released_at, ended_at = [], None
    for epoch in range(200):
        if controller.should_release(epoch, schedule.lr, schedule.relative_epoch(epoch)):
            if controller.exhausted:
                ended_at = epoch
                break
            controller.release(epoch)
            schedule.restart(epoch)
            released_at.append(epoch)
        for batch in range(4):
            schedule.lr_for_batch(epoch, batch, 4)
        schedule.end_epoch(epoch, val_ccc=0.1, best_so_far=0.5)  # never improves
    assert released_at == release_epochs
    assert ended_at == end_epoch


def test_state_round_trip_restores_trainable_parameters() -> None:
    controller = reference_controller(_frozen_stages())
    controller.release(0)
    controller.release(35)
    state = json.loads(json.dumps(controller.state_dict()))

    resumed_stages = _frozen_stages()  # a freshly built model: everything frozen
    for parameter in resumed_stages[2].parameters:
        parameter.requires_grad_(True)  # even a stray trainable tensor is put back as saved
    resumed = reference_controller(())
    resumed.load_state_dict(state, resumed_stages)
    assert _trainable(resumed_stages) == [[True, True], [True, True], [False, False]]
    assert resumed.released == 2 and not resumed.exhausted
    assert not resumed.should_release(35, lr=1e-4, relative_epoch=0)  # already handled before the checkpoint
    assert resumed.release(70) is resumed_stages[2]
    assert resumed.exhausted


def test_frozen_state_round_trip_stays_exhausted() -> None:
    controller = reference_controller(())
    controller.release(0)
    resumed = reference_controller(())
    resumed.load_state_dict(json.loads(json.dumps(controller.state_dict())))
    assert resumed.started and resumed.exhausted and resumed.released == 0


def test_loading_a_state_from_other_stages_fails() -> None:
    controller = reference_controller(_frozen_stages())
    controller.release(0)
    state = controller.state_dict()
    with pytest.raises(ValueError, match=r"released stages \[\('visual.a', 'audio.a'\)\]"):
        reference_controller(()).load_state_dict(state, ())  # a frozen-mode run cannot resume a release run
    renamed = tuple(ReleaseStage(("visual.x", "audio.x"), s.parameters) for s in _frozen_stages())
    with pytest.raises(ValueError, match="visual.x"):
        reference_controller(()).load_state_dict(state, renamed)
    with pytest.raises(ValueError, match="phase_epochs"):
        reference_controller(()).load_state_dict({"released": []})
