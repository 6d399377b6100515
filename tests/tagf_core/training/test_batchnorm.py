"""Precise BatchNorm statistics: what eval mode computes, not what the running averages remember."""

from __future__ import annotations

import torch
from torch import nn

from tagf_core.training.batchnorm import batchnorm_layers, recompute_batchnorm


class _DropoutThenNorm(nn.Module):
    """Linear → Dropout 0.6 → BatchNorm1d: the pattern of TAGF's attention dropout before the head's norm."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.dropout = nn.Dropout(0.6)
        self.norm = nn.BatchNorm1d(3)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.linear(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.hidden(x))


def _batches(count: int, size: int = 64) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [{"x": torch.randn(size, 4, generator=generator) * 3 + 1} for _ in range(count)]


def test_the_statistics_become_the_eval_mode_population_statistics() -> None:
    torch.manual_seed(0)
    model = _DropoutThenNorm()
    batches = _batches(5)
    used = recompute_batchnorm(model, [model.norm], batches, lambda b: model(b["x"]), max_batches=10)
    assert used == 5
    with torch.no_grad():
        hidden = [model.linear(b["x"]) for b in batches]  # dropout off, as in evaluation
    expected_mean = torch.stack([h.mean(0) for h in hidden]).mean(0)
    expected_var = torch.stack([h.var(0, unbiased=True) for h in hidden]).mean(0)
    torch.testing.assert_close(model.norm.running_mean, expected_mean)
    torch.testing.assert_close(model.norm.running_var, expected_var)
    assert not model.training and not model.norm.training
    assert model.norm.momentum == 0.1  # restored


def test_running_averages_after_few_train_steps_are_far_from_it() -> None:
    """The failure the recomputation fixes: a few momentum-0.1 updates with dropout on leave the averages
    mostly at their start (variance 1) and inflated by dropout; eval-mode outputs then shrink."""
    torch.manual_seed(0)
    model = _DropoutThenNorm()
    with torch.no_grad():
        model.linear.weight.mul_(0.01)  # small activations, as TAGF's L2-normalised features
        model.train()
        for batch in _batches(3):
            model(batch["x"])
        model.eval()
        x = _batches(1)[0]["x"]
        shrunk = model(x).std()
        recompute_batchnorm(model, [model.norm], _batches(3), lambda b: model(b["x"]), max_batches=3)
        restored = model(x).std()
    assert shrunk < 0.3 and 0.8 < restored < 1.2


def test_no_batches_leaves_the_statistics_alone() -> None:
    model = _DropoutThenNorm()
    model.norm.running_mean.fill_(0.5)
    assert recompute_batchnorm(model, [model.norm], [], lambda b: model(b["x"]), max_batches=4) == 0
    assert torch.all(model.norm.running_mean == 0.5)


def test_max_batches_bounds_the_pass() -> None:
    model = _DropoutThenNorm()
    seen: list[int] = []
    recompute_batchnorm(model, [model.norm], _batches(6), lambda b: seen.append(1) or model(b["x"]), max_batches=2)
    assert len(seen) == 2 and int(model.norm.num_batches_tracked) == 2


def test_layers_outside_the_forward_can_be_skipped() -> None:
    outer = nn.Sequential(nn.BatchNorm1d(2), _DropoutThenNorm())
    assert batchnorm_layers(outer) == [outer[0], outer[1].norm]
    assert batchnorm_layers(outer, skip=[outer[0]]) == [outer[1].norm]
