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
    "feature_matching",
    "statistics_l1",
    "expression_loss",
    "total_variation",
    "mask_sparsity",
    "masked_l1",
    "low_frequency_l1",
    "flow_magnitude",
]


def _mean(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return x.mean()
    return (x * weight).sum() / weight.expand_as(x).sum().clamp(min=1e-6)


def d_hinge(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Discriminator hinge loss: ``E[relu(1 - D(real))] + E[relu(1 + D(fake))]``; the means are
    weighted by ``weight`` (broadcast to the logits) when given, e.g. to count only the patches
    that hold synthesised pixels."""
    return _mean(F.relu(1 - real_logits), weight) + _mean(F.relu(1 + fake_logits), weight)


def g_hinge(fake_logits: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Generator hinge loss: ``-E[D(fake)]`` (weighted by ``weight`` when given)."""
    return -_mean(fake_logits, weight)


def feature_matching(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of the L1 between a discriminator's features of paired real and fake
    images (pix2pixHD); the real features are constants."""
    return sum((f - r.detach()).abs().mean() for r, f in zip(real, fake, strict=True)) / max(len(real), 1)


def expression_loss(
    predicted: torch.Tensor, target: torch.Tensor, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error of (B, K) regressed expression weights against the target weights, each
    weight's error divided by ``scale`` (K,) when given (standardised: the weights that vary across
    photos count, not the many that are almost always 0)."""
    if scale is None:
        return F.mse_loss(predicted, target)
    return (((predicted - target) / scale) ** 2).mean()


def statistics_l1(
    features_a: list[torch.Tensor], features_b: list[torch.Tensor], weight: torch.Tensor
) -> torch.Tensor:
    """Texture-statistics distance: the mean over layers of the L1 between the per-channel means
    and spreads of paired feature maps (B, C, h, w) inside ``weight`` (B, 1, H, W), which is area-
    pooled to each layer's size (as AdaIN's statistics, restricted to a region). A blurred region
    keeps its means but loses its spreads, which an L1 on the features themselves barely sees."""
    total = weight.new_zeros(())
    for fa, fb in zip(features_a, features_b, strict=True):
        w = F.adaptive_avg_pool2d(weight, fa.shape[-2:])
        n = w.sum((2, 3)).clamp(min=1e-6)
        stats = []
        for f in (fa, fb):
            mean = (f * w).sum((2, 3)) / n
            var = (((f - mean[..., None, None]) ** 2) * w).sum((2, 3)) / n
            stats.append((mean, (var + 1e-8).sqrt()))
        total = total + (stats[0][0] - stats[1][0]).abs().mean() + (stats[0][1] - stats[1][1]).abs().mean()
    return total / max(len(features_a), 1)


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
