"""Test-time crops of the regression network, and the extra ones for large-yaw faces.

A :class:`View` is one crop of a face: its side ``scale`` times the trained crop, turned ``angle``
degrees about its centre and moved ``shift`` crop sides. :class:`LandmarkRegressor` averages the
network's outputs over a face's views in image coordinates (its ``scales`` are views with only a
scale). A face the first pass puts at |yaw| >= ``profile_min_yaw`` is regressed again from the
:data:`PROFILE_VIEWS`, and the two passes are averaged as one pass over all the views
(:func:`add_profile_views`): at large yaw the network's points, the jaw most, move with the crop,
and more crops average that out. Near-frontal faces cost nothing extra. The views and the
threshold were chosen on the AFLW2000-3D dev set's train half (README, "Regression network").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from face3d.camera import euler_degrees
from face3d.crop import compose_affine, crop_transform
from face3d.regress.decode import to_image


@dataclass(frozen=True)
class View:
    """One test-time crop of a face.

    Attributes:
        scale: crop side relative to the trained ``crop_scale`` crop.
        angle: in-plane turn of the crop about its centre, degrees (the crop's content turns from
            image x toward image y).
        shift: (x, y) move of the crop centre, in sides of the unscaled crop.
    """

    scale: float = 1.0
    angle: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self):
        if not self.scale > 0:
            raise ValueError(f"a view's scale must be positive, got {self.scale}")

    def affine(self, cx: float, cy: float, side: float, size: int) -> np.ndarray:
        """(2, 3) image -> crop affine of this view of the crop centred at (cx, cy) with ``side``."""
        A = crop_transform(cx + self.shift[0] * side, cy + self.shift[1] * side, side * self.scale, size)
        if self.angle == 0.0:
            return A
        t = math.radians(self.angle)
        c, s, o = math.cos(t), math.sin(t), (size - 1) / 2
        turn = np.array([[c, -s, o - c * o + s * o], [s, c, o - s * o - c * o]])
        return compose_affine(turn, A)

    @property
    def reach(self) -> float:
        """Half the side of the image square the crop reads, in halves of the unscaled side."""
        t = math.radians(self.angle)
        return self.scale * (abs(math.cos(t)) + abs(math.sin(t))) + 2 * max(map(abs, self.shift))


def as_views(views) -> tuple[View, ...]:
    """Crop-side factors (floats) and :class:`View` objects -> views."""
    out = tuple(v if isinstance(v, View) else View(float(v)) for v in views)
    if not out:
        raise ValueError("at least one view is needed")
    return out


#: The extra views of a large-yaw face: the crop moved 4 % of its side right, left, down and up,
#: and turned 8 degrees each way (each also mirrored with ``flip``).
PROFILE_VIEWS = (
    View(shift=(0.04, 0.0)),
    View(shift=(-0.04, 0.0)),
    View(shift=(0.0, 0.04)),
    View(shift=(0.0, -0.04)),
    View(angle=8.0),
    View(angle=-8.0),
)

#: |yaw| (degrees, the first pass's) from which a face gets the :data:`PROFILE_VIEWS`.
PROFILE_MIN_YAW = 30.0


def add_profile_views(regressor, image, boxes, raw: dict, As: np.ndarray, res: dict, turns: np.ndarray):
    """Regress the faces of ``res`` at |yaw| >= ``regressor.profile_min_yaw`` (not turned by the
    upright search) again from ``regressor.profile_views`` and average them with the first pass,
    as one pass over all their views. ``raw``/``As``: the first pass's per-crop network outputs
    and affines (view-major: each view's crops of all N faces); ``res``: its per-face results
    (updated in place and returned)."""
    n = len(boxes)
    m = len(As) // n
    yaw = euler_degrees(torch.from_numpy(res["rotation"])).numpy()[:, 0]
    sel = np.flatnonzero((np.abs(yaw) >= regressor.profile_min_yaw) & (turns == 0))
    if len(sel) == 0:
        return res
    e, k = len(regressor.profile_views), len(sel)
    crops, A_extra = regressor.crops(image, [boxes[i] for i in sel], regressor.profile_views)
    extra = regressor._run(crops)
    rows = (np.arange(m)[:, None] * n + sel[None]).reshape(-1)  # the selected faces' first-pass crops
    merged = {key: np.concatenate([raw[key][rows], extra[key]]) for key in raw}
    new = to_image(merged, np.concatenate([As[rows], A_extra]), m + e, k)
    for key in res:
        res[key][sel] = new[key]
    return res
