"""Weight averaging of regressor networks: an exponential moving average (EMA) during training and
a uniform "soup" of finished fine-tunes.

Both average every floating-point entry of the state dict (weights and BatchNorm running
statistics); integer entries (``num_batches_tracked``) are taken from the newest network. The
landmark buffers (template, bases, landmark-convention offset) are equal across fine-tunes of one
initialisation, so averaging leaves them as they are. A soup only makes sense for networks that
share an initialisation (fine-tunes of one checkpoint stay in one basin of the loss; Wortsman et
al. 2022, "Model soups"); :func:`soup` refuses checkpoints whose configs differ.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import torch

from face3d.regress.network import RegressorNet, RegressorWeightsError


@torch.no_grad()
def ema_update(average: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """In place: ``average <- decay * average + (1 - decay) * net`` over the state dicts.

    ``average`` and ``net`` must have the same architecture; ``decay`` in [0, 1) (0 copies ``net``).
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
    src = net.state_dict()
    for name, dst in average.state_dict().items():
        value = src[name]
        if dst.is_floating_point():
            dst.mul_(decay).add_(value.to(dst.dtype), alpha=1.0 - decay)
        else:
            dst.copy_(value)


def average_state_dicts(states: Sequence[dict], weights: Sequence[float] | None = None) -> dict:
    """The weighted mean of state dicts with the same keys and shapes (uniform by default).

    Integer entries come from the last state dict.
    """
    if not states:
        raise ValueError("average_state_dicts needs at least one state dict")
    w = [1.0] * len(states) if weights is None else [float(x) for x in weights]
    if len(w) != len(states) or sum(w) <= 0 or min(w) < 0:
        raise ValueError("weights: one non-negative weight per state dict, not all zero")
    keys = list(states[0])
    for s in states[1:]:
        if list(s) != keys:
            raise ValueError("state dicts hold different entries (different architectures?)")
    total = sum(w)
    out = {}
    for k in keys:
        first = states[0][k]
        if any(s[k].shape != first.shape for s in states):
            raise ValueError(f"state dict entry {k!r} has different shapes")
        if first.is_floating_point():
            out[k] = sum(wi / total * s[k].to(torch.float64) for wi, s in zip(w, states, strict=True)).to(
                first.dtype
            )
        else:
            out[k] = states[-1][k].clone()
    return out


def ema_copy(net: RegressorNet) -> RegressorNet:
    """A frozen copy of ``net`` in eval mode, to be updated by :func:`ema_update`."""
    average = copy.deepcopy(net).eval()
    for p in average.parameters():
        p.requires_grad_(False)
    return average


def soup(folders: Sequence[str | os.PathLike], weights: Sequence[float] | None = None) -> RegressorNet:
    """The (weighted) average of pretrained regressor folders, as one network in eval mode.

    Raises :class:`RegressorWeightsError` when the folders' configs differ.
    """
    nets = [RegressorNet.from_pretrained(f) for f in folders]
    if not nets:
        raise ValueError("soup needs at least one regressor folder")
    for f, n in zip(folders[1:], nets[1:], strict=True):
        if n.config != nets[0].config:
            raise RegressorWeightsError(f"{f}: its config differs from {folders[0]}'s; cannot average them")
    out = nets[-1]
    out.load_state_dict(average_state_dicts([n.state_dict() for n in nets], weights))
    return out.eval()
