"""Loss terms of the DefGAN / GANimation training (pure functions of tensors).

Images are (B, 3, H, W) in [0, 1], masks (B, 1, H, W) in [0, 1], flows (B, 2, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from editing.compare.perceptual import masked_l1

__all__ = [
    "d_hinge",
    "g_hinge",
    "expression_loss",
    "total_variation",
    "mask_sparsity",
    "masked_l1",
    "low_frequency_l1",
    "flow_magnitude",
]


def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: ``E[relu(1 - D(real))] + E[relu(1 + D(fake))]``."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss: ``-E[D(fake)]``."""
    return -fake_logits.mean()


def expression_loss(
    predicted: torch.Tensor, target: torch.Tensor, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error of (B, K) regressed expression weights against the target weights, each
    weight's error divided by ``scale`` (K,) when given (standardised: the weights that vary across
    photos count, not the many that are almost always 0)."""
    if scale is None:
        return F.mse_loss(predicted, target)
    return (((predicted - target) / scale) ** 2).mean()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between 4-neighbours of (B, C, H, W) maps (smoothness)."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def mask_sparsity(mask: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``1 - M`` (how much texture replaces the input) inside ``region`` (B, 1, H, W) if given."""
    change = 1 - mask
    if region is None:
        return change.mean()
    return (change * region).sum() / region.sum().clamp(min=1.0)


def low_frequency_l1(a: torch.Tensor, b: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """L1 between ``factor``-times average-pooled images: keeps skin tone, hair and lighting (the
    identity-bearing low frequencies) while leaving the generator free at fine scales."""
    return (F.avg_pool2d(a, factor) - F.avg_pool2d(b, factor)).abs().mean()


def flow_magnitude(flow: torch.Tensor) -> torch.Tensor:
    """Mean squared displacement of a (B, 2, H, W) flow."""
    return (flow**2).mean()
