"""The reference's lr schedule (ref §3.3): per-batch sawtooth warm-up, then plateau decay on validation CCC."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from tagf_core.config import TrainConfig
from tagf_core.training.schedule import WarmupPlateauSchedule

BASE_LR = 1e-4
BATCHES = 10


def reference_schedule(**overrides: Any) -> WarmupPlateauSchedule:
    """The schedule with the reference's settings (the config's defaults), ``overrides`` changed."""
    train = TrainConfig()
    settings = {
        "base_lr": train.learning_rate, "warmup_epochs": train.min_epochs, "patience": train.plateau_patience,
        "factor": train.plateau_factor,
    }  # fmt: skip
    return WarmupPlateauSchedule(**{**settings, **overrides})


def _warm_up(schedule: WarmupPlateauSchedule, start: int = 0, epochs: int = 5) -> None:
    """Run ``epochs`` epochs from ``start``, each improving on the last (CCC 0.1, 0.2, …)."""
    for offset in range(epochs):
        for batch in range(BATCHES):
            schedule.lr_for_batch(start + offset, batch, BATCHES)
        schedule.end_epoch(start + offset, val_ccc=0.1 * (offset + 1), best_so_far=0.1 * offset)


def _bad_epochs(schedule: WarmupPlateauSchedule, start: int, count: int, best: float = 0.9) -> list[float]:
    """``count`` non-improving epochs from ``start``; the lr after each."""
    lrs = []
    for epoch in range(start, start + count):
        schedule.end_epoch(epoch, val_ccc=best - 0.1, best_so_far=best)
        lrs.append(schedule.lr)
    return lrs


@pytest.mark.parametrize("relative", [0, 1, 2, 3, 4])
def test_warmup_sawtooth_climbs_from_zero_each_epoch(relative: int) -> None:
    schedule = reference_schedule(base_lr=BASE_LR)
    for epoch in range(relative):
        schedule.end_epoch(epoch, val_ccc=0.0, best_so_far=0.0)
    assert schedule.lr_for_batch(relative, 0, BATCHES) == 0.0
    middle = schedule.lr_for_batch(relative, 5, BATCHES)
    last = schedule.lr_for_batch(relative, BATCHES - 1, BATCHES)
    # ref §3.3: b · lr0 · (r+1) / (N · 5 · 5)
    assert middle == pytest.approx(5 * BASE_LR * (relative + 1) / (BATCHES * 25), rel=1e-12)
    assert last == pytest.approx((BATCHES - 1) * BASE_LR * (relative + 1) / (BATCHES * 25), rel=1e-12)
    assert schedule.lr == last  # the value the optimizer holds after the epoch


def test_full_lr_only_from_the_end_of_the_fifth_epoch() -> None:
    schedule = reference_schedule(base_lr=BASE_LR)
    _warm_up(schedule, epochs=4)
    assert schedule.lr == pytest.approx((BATCHES - 1) * BASE_LR * 4 / (BATCHES * 25))  # still the sawtooth
    for batch in range(BATCHES):
        schedule.lr_for_batch(4, batch, BATCHES)
    schedule.end_epoch(4, val_ccc=0.5, best_so_far=0.4)
    assert schedule.lr == BASE_LR
    assert [schedule.lr_for_batch(5, batch, BATCHES) for batch in (0, BATCHES - 1)] == [BASE_LR, BASE_LR]


def test_plateau_reduces_on_the_sixth_bad_epoch_not_the_fifth() -> None:
    schedule = reference_schedule(base_lr=BASE_LR, patience=5, factor=0.1)
    _warm_up(schedule)
    lrs = _bad_epochs(schedule, start=5, count=6)
    assert lrs[:5] == [BASE_LR] * 5
    assert lrs[5] == pytest.approx(BASE_LR * 0.1)
    assert schedule.lr_for_batch(11, 0, BATCHES) == lrs[5]  # no sawtooth after warm-up
    lrs += _bad_epochs(schedule, start=11, count=6)
    assert lrs[6:11] == [lrs[5]] * 5  # the count restarted after the reduction
    assert lrs[11] == pytest.approx(BASE_LR * 0.01)


def test_warmup_epochs_do_not_count_as_bad() -> None:
    schedule = reference_schedule(base_lr=BASE_LR)
    _bad_epochs(schedule, start=0, count=5)  # the whole warm-up without improvement
    assert schedule.bad_epochs == 0
    lrs = _bad_epochs(schedule, start=5, count=6)
    assert lrs[:5] == [BASE_LR] * 5 and lrs[5] == pytest.approx(BASE_LR * 0.1)


def test_improvement_resets_the_bad_epoch_count() -> None:
    schedule = reference_schedule(base_lr=BASE_LR)
    _warm_up(schedule)
    _bad_epochs(schedule, start=5, count=5, best=0.5)
    schedule.end_epoch(10, val_ccc=0.6, best_so_far=0.5)  # a new best
    assert schedule.bad_epochs == 0
    lrs = _bad_epochs(schedule, start=11, count=6, best=0.6)
    assert lrs[:5] == [BASE_LR] * 5 and lrs[5] == pytest.approx(BASE_LR * 0.1)


def test_five_reductions_are_needed_to_fall_below_1e_minus_8() -> None:
    # ref §3.3: 1e-4 · 0.1⁴ = 1.0000000000000004e-8 is not < 1e-8
    assert 1e-4 * 0.1 * 0.1 * 0.1 * 0.1 == 1.0000000000000004e-8
    schedule = reference_schedule(base_lr=1e-4)
    _warm_up(schedule)
    epoch, reductions, lr = 5, 0, schedule.lr
    while schedule.lr >= 1e-8:
        schedule.end_epoch(epoch, val_ccc=0.0, best_so_far=0.5)
        reductions += schedule.lr < lr
        lr, epoch = schedule.lr, epoch + 1
    assert reductions == 5
    assert epoch == 35  # the last reduction ends epoch 34: 5 warm-up + 5 × 6 bad epochs
    assert schedule.lr == pytest.approx(1e-9)


def test_reductions_stop_below_the_reference_eps() -> None:
    schedule = reference_schedule(base_lr=1e-10, warmup_epochs=0, patience=0)
    lrs = _bad_epochs(schedule, start=0, count=3)
    assert lrs[0] == pytest.approx(1e-11)  # a step of 9e-11 is taken
    assert lrs[1:] == [lrs[0], lrs[0]]  # a step of 9e-12 < 1e-11 is not


def test_restart_begins_a_new_warmup_at_the_release_epoch() -> None:
    schedule = reference_schedule(base_lr=BASE_LR)
    _warm_up(schedule)
    _bad_epochs(schedule, start=5, count=8)
    assert schedule.lr < BASE_LR and schedule.bad_epochs == 2
    schedule.restart(13)
    assert schedule.relative_epoch(13) == 0 and schedule.relative_epoch(20) == 7
    assert schedule.lr == BASE_LR and schedule.bad_epochs == 0 and schedule.best is None
    assert schedule.lr_for_batch(13, 0, BATCHES) == 0.0
    assert schedule.lr_for_batch(14, 5, BATCHES) == pytest.approx(5 * BASE_LR * 2 / (BATCHES * 25))
    with pytest.raises(ValueError, match="before the last restart"):
        schedule.end_epoch(12, val_ccc=0.0, best_so_far=0.0)


def test_batch_index_must_lie_in_the_epoch() -> None:
    schedule = reference_schedule()
    with pytest.raises(ValueError, match=r"outside \[0, 10\)"):
        schedule.lr_for_batch(0, 10, 10)


def test_apply_sets_every_parameter_group() -> None:
    groups: list[dict[str, Any]] = [
        {"params": [torch.nn.Parameter(torch.zeros(2))]},
        {"params": [torch.nn.Parameter(torch.zeros(3))], "lr": 1.0},
    ]
    optimizer = torch.optim.Adam(groups)
    schedule = reference_schedule(base_lr=BASE_LR)
    schedule.lr_for_batch(0, 3, BATCHES)
    schedule.apply(optimizer)
    assert [group["lr"] for group in optimizer.param_groups] == [schedule.lr, schedule.lr]
    assert schedule.lr == pytest.approx(3 * BASE_LR / (BATCHES * 25))


def _continue(schedule: WarmupPlateauSchedule, start: int, epochs: int) -> list[float]:
    """Every lr the schedule gives over ``epochs`` epochs from ``start``, with a fixed CCC pattern."""
    trace = []
    best = 0.3
    for epoch in range(start, start + epochs):
        trace += [schedule.lr_for_batch(epoch, batch, BATCHES) for batch in range(BATCHES)]
        val_ccc = 0.35 if epoch % 9 == 0 else 0.2
        schedule.end_epoch(epoch, val_ccc, best)
        best = max(best, val_ccc)
        trace.append(schedule.lr)
    return trace


@pytest.mark.parametrize(("stop_after", "bad_after_warmup"), [(2, 0), (8, 3)], ids=["mid-warmup", "mid-plateau"])
def test_state_round_trip_continues_identically(stop_after: int, bad_after_warmup: int) -> None:
    original = reference_schedule(base_lr=BASE_LR)
    original.restart(1)
    _continue(original, start=1, epochs=stop_after)
    assert original.bad_epochs == bad_after_warmup
    state = json.loads(json.dumps(original.state_dict()))
    resumed = reference_schedule(base_lr=0.5, warmup_epochs=2, patience=1, factor=0.5)  # settings come from state
    resumed.load_state_dict(state)
    assert resumed.state_dict() == original.state_dict()
    next_epoch = 1 + stop_after
    assert _continue(resumed, next_epoch, 20) == _continue(original, next_epoch, 20)


def test_load_state_dict_names_missing_keys() -> None:
    with pytest.raises(ValueError, match="bad_epochs"):
        reference_schedule().load_state_dict({"lr": 1e-4})


@pytest.mark.parametrize("num_batches", [1, 2, 7])
@pytest.mark.parametrize("warmup_epochs", [0, 1, 5])
def test_zero_lr_epochs_are_the_epochs_the_schedule_trains_at_lr_0(num_batches: int, warmup_epochs: int) -> None:
    from tagf_core.training.schedule import zero_lr_epochs

    schedule = reference_schedule(warmup_epochs=warmup_epochs)
    at_zero = []
    for epoch in range(warmup_epochs + 3):
        rates = [schedule.lr_for_batch(epoch, batch, num_batches) for batch in range(num_batches)]
        if all(rate == 0 for rate in rates):
            at_zero.append(epoch)
        schedule.end_epoch(epoch, 0.1 * (epoch + 1), 0.1 * epoch)
    assert zero_lr_epochs(warmup_epochs=warmup_epochs, num_batches=num_batches) == at_zero
    assert at_zero == (list(range(warmup_epochs)) if num_batches == 1 else [])  # the case the warning is for
