"""The edits of one image: every face's :class:`FaceEdit` per target and the composited outputs.

Shared by the 3D edit (:mod:`editing.api`), the texture generator's clean-up and the 2D baseline
(:mod:`editing.gan.refine`) and the method comparison (:mod:`editing.compare.run`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from editing.edit3d import FaceEdit


@dataclass(frozen=True)
class ImageEdit:
    """All edits of one image.

    Attributes:
        outputs: target label -> (H, W, 3) uint8 edited image (every selected face edited).
        faces: per face, the :class:`FaceFit` and its edits (one per target, in order).
        labels: the target labels in order.
    """

    outputs: dict[str, np.ndarray]
    faces: list[tuple[object, list[FaceEdit]]]
    labels: list[str]

    @classmethod
    def from_faces(cls, image: np.ndarray, faces: list, labels: list[str]) -> ImageEdit:
        """The ImageEdit of ``faces`` (per face: its :class:`FaceFit` and edits, one per label),
        its outputs composited onto ``image`` by :func:`combine`."""
        return cls(combine(image, faces, labels), faces, labels)


def combine(image: np.ndarray, per_face: list, labels: list[str]) -> dict[str, np.ndarray]:
    """Target label -> a copy of ``image`` ((H, W, 3) uint8) with every face's edit to that target
    pasted inside its region (``per_face``: (face, edits) pairs, edits in ``labels`` order)."""
    outputs = {}
    for k, label in enumerate(labels):
        out = image.copy()
        for _, edits in per_face:
            out[edits[k].region] = edits[k].image[edits[k].region]
        outputs[label] = out
    return outputs
