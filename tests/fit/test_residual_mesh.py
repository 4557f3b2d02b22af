"""face3d.fit.residual_mesh: the working crop's pixels that lie in the photo."""

from __future__ import annotations

import numpy as np
import torch

from face3d.fit.residual_mesh import in_photo, working_crop


def test_in_photo_masks_the_padding_of_a_resized_crop():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (200, 160, 3), dtype=np.uint8)
    assert torch.equal(in_photo(image, (10, 20, 150, 180), (80, 70)), torch.ones(80, 70))
    image[:60] = 0  # a black band along the top, 60 rows
    box, (h, w), (sx, sy) = working_crop(np.array([[30.0, 40.0], [130.0, 170.0]]), 200, 160, 64, 0.1)
    mask = in_photo(image, box, (h, w))
    assert mask.shape == (h, w) and set(mask.unique().tolist()) == {0.0, 1.0}
    rows = np.arange(h)
    top = box[1] + rows / sy  # the image row where each crop row starts, and ends
    bottom = box[1] + (rows + 1) / sy
    assert (mask[torch.from_numpy(bottom <= 60)] == 0).all()
    assert (mask[torch.from_numpy(top >= 60)] == 1).all()
