"""A perceptual distance from the project's own FER classifier: its early feature maps.

Used to score the mouth cycle (``scripts/bench/bench_mouth_cycle.py``: the distance and the KID
features of mouth crops) and as the texture generator's perceptual loss
(:mod:`editing.train.texture`). It runs on the crop's own resolution (grey, no resizing): the first
stages of a CNN trained on 48 px faces are edge and blob detectors that do not need the face's
framing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from editing.compare.fer import FerClassifier


def masked_l1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference of (B, C, H, W) maps, weighted per pixel by ``weight`` (B, 1, H, W)."""
    diff = (a - b).abs()
    if weight is None:
        return diff.mean()
    return (diff * weight).sum() / (weight.sum() * a.shape[1]).clamp(min=1.0)


class FerPerceptual(nn.Module):
    """A perceptual distance from the first two stages of the project's FER classifier (grey
    input, no resizing: the crop's own resolution). ``forward(a, b, weight)``: images (B, 3, H, W)
    in [0, 1] and a (B, 1, H, W) weight -> the weighted mean L1 of the feature maps."""

    def __init__(self, fer: FerClassifier | None = None, stages: int = 2):
        super().__init__()
        fer = fer or FerClassifier.from_pretrained()
        body, cut, seen = fer.net.body, 0, 0
        for i, layer in enumerate(body):
            if isinstance(layer, nn.MaxPool2d):
                seen += 1
                if seen == stages:
                    cut = i + 1
                    break
        self.body = nn.Sequential(*list(body)[:cut]).eval()
        for p in self.body.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):  # the BatchNorm statistics are the classifier's
        return super().train(False)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        grey = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3] - 0.5) / 0.25
        out, h = [], grey
        for layer in self.body:
            h = layer(h)
            if isinstance(layer, nn.MaxPool2d):
                out.append(h)
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        total = a.new_zeros(())
        for fa, fb in zip(self._features(a), self._features(b), strict=True):
            w = F.adaptive_avg_pool2d(weight, fa.shape[-2:])
            total = total + masked_l1(fa, fb, w)
        return total

    def statistics(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 2 * channels) per-channel means and spreads of every
        stage's feature maps (the KID features of the mouth cycle)."""
        with torch.no_grad():
            feats = self._features(image)
        return torch.cat([torch.cat([f.mean((2, 3)), f.std((2, 3))], 1) for f in feats], 1)
