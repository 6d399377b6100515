"""Precise BatchNorm statistics: the running mean and variance recomputed for the current weights.

The reference keeps PyTorch's running averages (momentum 0.1, updated in every training step with dropout
active) and reloads them with the best weights after every epoch (ref §3.5). Two things then make the
eval-mode model differ from the one that trained:

* the averages lag the weights: after n steps a fraction 0.9ⁿ of their start value (mean 0, variance 1) is
  left, and the greedy reload puts back the averages of the best epoch, so with a few batches per epoch they
  never converge (after 6 epochs of 7 batches ``num_batches_tracked`` can be 9, not 42);
* dropout before a BatchNorm (attention dropout 0.6 feeds the gates and the head's BatchNorm) inflates the
  variance the averages see in training; in eval mode dropout is off, the variance is smaller, and the
  normalised outputs shrink (the "variance shift" of dropout before BatchNorm).

``recompute_batchnorm`` answers both: it resets every BatchNorm the forward runs, then feeds training
windows through the model in eval mode (dropout off, as evaluation will be) with only those BatchNorm
layers in train mode and ``momentum=None``, so each ends up holding the cumulative average over the batches
of the statistics it normalises with — the population statistics of exactly what eval mode computes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

Batch = dict[str, Any]


def batchnorm_layers(model: nn.Module, skip: Sequence[nn.Module] = ()) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer of ``model`` outside the modules in ``skip`` (e.g. backbones the forward never runs)."""
    skipped = {id(m) for module in skip for m in module.modules()}
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in skipped]


def recompute_batchnorm(
    model: nn.Module,
    layers: Sequence[nn.modules.batchnorm._BatchNorm],
    batches: Iterable[Batch],
    forward: Callable[[Batch], torch.Tensor],
    max_batches: int,
) -> int:
    """Replace the running statistics of ``layers`` by their average over up to ``max_batches`` batches.

    The model runs in eval mode except ``layers`` (train mode, cumulative averaging), without gradients.
    Returns the number of batches used; with none, the statistics are left as they were. The model is left
    in eval mode and every layer's momentum as it was.
    """
    if not layers:
        return 0
    remaining = iter(batches)
    first = next(remaining, None)
    if first is None:
        return 0
    momenta = [layer.momentum for layer in layers]
    model.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative moving average: every batch weighs the same
        layer.train()
    used = 0
    try:
        with torch.no_grad():
            for batch in itertools.chain([first], itertools.islice(remaining, max_batches - 1)):
                forward(batch)
                used += 1
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        model.eval()
    return used
