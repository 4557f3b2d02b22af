"""Growing a trained regressor: wider and deeper (computing almost the same function), or larger crops.

Training a network of the size the design asks for (a few million parameters) from scratch does
not fit a 2-core CPU session, but a trained small network can be *grown* (Net2Net; Chen et al.
2016) and fine-tuned from where it stands:

- **wider**: every stage gets ``width`` times its channels and the fully connected layer
  ``hidden`` units. The new channels are computed from freshly initialised weights, and every
  weight that *reads* a new channel (the next pointwise convolution, the fully connected layer,
  the heads) starts at zero, so the new channels change nothing until training moves those
  weights (their gradients are not zero: the new channels' activations are).
- **deeper**: near-identity residual blocks (stride 1, as many channels in as out) are inserted
  after the stages named in ``extra_after``; their pointwise BatchNorm starts with zero shift and
  the scale ``INSERTED_SCALE`` (1e-3), so a block adds almost nothing to its input. (A scale of
  exactly zero would make the block exactly the identity but dead: ReLU6's gradient at 0 is zero,
  so it could never start learning.)
- **larger input** (``size``): the crop side grows (the crop still covers ``crop_scale`` times the
  landmark box, so the face gets more pixels). The convolutions do not depend on the input size
  and the pooling is adaptive, so every weight is kept, but a face now spans more pixels than the
  filters were trained on: unlike the two above, this changes the outputs, and the fine-tune has
  to adapt them (with shards made at the new size: ``--size`` of the data scripts).

Widened only, the grown network (eval mode, the old running statistics) gives the old network's
outputs to float rounding; each inserted block moves them by about ``INSERTED_SCALE`` of the
normalised activations (about 1e-4 of each output's range on the tests' small networks).
:func:`grown_config` says what it will be, :func:`grow` builds it. Both are plain
:class:`RegressorConfig` / :class:`RegressorNet`, so the fine-tune, the inference trunk and the
checkpoints need nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from face3d.regress.network import RegressorConfig, RegressorNet

#: Initial BatchNorm scale of an inserted block's pointwise convolution (see the module doc).
INSERTED_SCALE = 1e-3


def _widen(c: int, width: float) -> int:
    """``c * width`` rounded to a multiple of 8, never fewer than ``c``."""
    return max(c, int(round(c * width / 8)) * 8)


def grown_config(
    config: RegressorConfig,
    width: float = 1.0,
    hidden: int | None = None,
    extra_after: Sequence[int] = (),
    size: int | None = None,
) -> tuple[RegressorConfig, list[int]]:
    """The grown architecture and where each old layer went.

    Args:
        config: the trained network's :class:`RegressorConfig`.
        width: channel multiplier, >= 1 (each stage's channels rounded to a multiple of 8).
        hidden: new width of the fully connected layer (default: ``config.hidden`` times ``width``,
            rounded likewise); not fewer than ``config.hidden``.
        extra_after: indices of the old stages (0 = the first depthwise-separable stage, up to
            ``len(config.strides) - 1``) after which one identity block is inserted; an index given
            twice inserts two.
        size: new input crop side, pixels, >= ``config.size`` (default: unchanged; see the module doc).

    Returns:
        ``(config, where)``: the new config, and for each old layer (the stem first, then each
        stage) its index in the new layer list.
    """
    if width < 1.0:
        raise ValueError(f"width must be >= 1 (growing only), got {width}")
    n_stages = len(config.strides)
    bad = [i for i in extra_after if not 0 <= int(i) < n_stages]
    if bad:
        raise ValueError(f"extra_after: stage indices are 0..{n_stages - 1}, got {bad}")
    new_size = config.size if size is None else int(size)
    if new_size < config.size:
        raise ValueError(f"size must be >= {config.size} (growing only), got {new_size}")
    new_hidden = _widen(config.hidden, width) if hidden is None else int(hidden)
    if new_hidden < config.hidden:
        raise ValueError(f"hidden must be >= {config.hidden} (growing only), got {new_hidden}")
    channels = [_widen(config.channels[0], width)]
    strides: list[int] = []
    where = [0]
    for i, s in enumerate(config.strides):
        channels.append(_widen(config.channels[i + 1], width))
        strides.append(s)
        where.append(len(strides))
        for _ in range(sum(int(j) == i for j in extra_after)):
            channels.append(channels[-1])
            strides.append(1)
    shape = {"channels": tuple(channels), "strides": tuple(strides), "hidden": new_hidden, "size": new_size}
    return replace(config, **shape), where


@torch.no_grad()
def _copy_conv_bn(dst: nn.Sequential, src: nn.Sequential, zero_new_inputs: bool) -> None:
    """Copy ``src`` (conv, BN, act) into the top-left corner of the larger ``dst``; the weights
    from new input channels to old output channels are zeroed when ``zero_new_inputs``."""
    (dc, dbn), (sc, sbn) = dst[:2], src[:2]
    co, ci = sc.weight.shape[:2]
    if zero_new_inputs:
        dc.weight[:co].zero_()
    dc.weight[:co, :ci] = sc.weight
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dbn, name)[:co] = getattr(sbn, name)
    dbn.num_batches_tracked.copy_(sbn.num_batches_tracked)


@torch.no_grad()
def _copy_linear(dst: nn.Linear, src: nn.Linear) -> None:
    """Copy ``src`` into the top-left corner of ``dst``; old outputs read nothing from new inputs."""
    co, ci = src.weight.shape
    dst.weight[:co].zero_()
    dst.weight[:co, :ci] = src.weight
    dst.bias[:co] = src.bias


def grow(
    net: RegressorNet,
    width: float = 1.0,
    hidden: int | None = None,
    extra_after: Sequence[int] = (),
    seed: int = 0,
    size: int | None = None,
) -> RegressorNet:
    """A wider and deeper copy of ``net`` with (almost) the same outputs (see the module doc; not
    when ``size`` grows), in eval mode.

    Args: as :func:`grown_config`; ``seed`` seeds the new weights' initialisation.
    """
    config, where = grown_config(net.config, width, hidden, extra_after, size)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        new = RegressorNet(config)
    finally:
        torch.random.set_rng_state(gen_state)
    for name, buf in net.named_buffers():  # the landmark rows and the convention offset
        if name.startswith("lm_"):
            getattr(new, name).copy_(buf)
    old_layers, new_layers = list(net.features), list(new.features)
    kept = set(where)
    with torch.no_grad():
        _copy_conv_bn(new_layers[0], old_layers[0], zero_new_inputs=False)
        for i in range(1, len(old_layers)):
            src, dst = old_layers[i], new_layers[where[i]]
            if src.residual != dst.residual:
                raise ValueError(f"stage {i - 1}: widening changed whether it is residual")
            _copy_conv_bn(dst.dw, src.dw, zero_new_inputs=False)  # depthwise: one input each
            _copy_conv_bn(dst.pw, src.pw, zero_new_inputs=True)
        for j, block in enumerate(new_layers):
            if j not in kept:  # an inserted block: its output starts near zero
                block.pw[1].weight.fill_(INSERTED_SCALE)
                block.pw[1].bias.zero_()
        _copy_linear(new.fc[0], net.fc[0])
        _copy_linear(new.head, net.head)
        _copy_linear(new.upright, net.upright)
    return new.eval()


def parameter_count(net: nn.Module) -> int:
    """Trainable parameters of ``net``."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
