"""editing.mouth: the inner-lip opening, the interior colours and their toning."""

from __future__ import annotations

import numpy as np
import torch

from editing.mouth import REFERENCE_SKIN, mouth_opening, photo_tone


def test_the_opening_is_the_inner_lip_polygon_grown():
    lm = torch.zeros(1, 68, 3)
    ring = [(40, 50), (50, 46), (60, 46), (70, 50), (60, 58), (50, 58), (45, 55), (65, 55)]
    order = [0, 1, 2, 3, 7, 4, 5, 6]  # iBUG 60..67 go round the inner lips
    for i, k in zip(range(60, 68), order, strict=True):
        lm[0, i] = torch.tensor([*ring[k], 50.0])
    K = torch.tensor([[50.0, 50.0, 0.0, 0.0]])  # at z = 50 cm: pixels = model x, y
    tight = mouth_opening(lm, K, (100, 100), face_size=0.0)
    grown = mouth_opening(lm, K, (100, 100), face_size=100.0)
    assert tight[52, 55] and not tight[30, 55] and not tight[52, 20]
    assert tight.sum() < grown.sum() and grown[tight].all()


def test_tone_follows_the_photos_exposure_and_keeps_grey_grey():
    mask = np.ones((10, 10), bool)
    ref = np.clip(REFERENCE_SKIN * 255, 0, 255).astype(np.uint8)
    np.testing.assert_allclose(photo_tone(np.broadcast_to(ref, (10, 10, 3)).copy(), mask), 1.0, atol=0.02)
    dark = photo_tone(np.broadcast_to(ref // 2, (10, 10, 3)).copy(), mask)
    assert (dark < 0.6).all()
    grey = photo_tone(np.full((10, 10, 3), 150, np.uint8), mask)
    assert np.ptp(grey) > 0  # a grey photo still tones a colour part by the reference's hue
