"""The edit-and-back cycle: a pixel-aligned test of what an edit synthesises.

A photo whose mouth is open is edited to a closed mouth (``via``, ``neutral`` by default) with the
3D warp path, then back to its own fitted expression. The lips and skin travel there and back as
the photo's own pixels, but the mouth interior of the result is drawn (the closed mouth hid it), so
the photo itself is the ground truth of what the synthesis should have drawn. The texture
generator is trained on these cycles and the mouth-cycle benchmark scores them
(``scripts/bench/bench_mouth_cycle.py``).

The second edit starts from the first edit's image with the same fit, its expression replaced by
the first edit's target: the geometry is known exactly, so no re-fit adds its own error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from editing.compare.quality import landmark_measures
from editing.edit3d import Editor3D, FaceEdit
from editing.expressions import ExpressionSpec
from editing.mouth import MOUTH_GROW, mouth_region  # noqa: F401 (re-exported)
from face3d.fit.pipeline import FaceFit


@dataclass(frozen=True)
class CycleEdit:
    """One face edited to ``via`` and back to its own expression.

    Attributes:
        there: the edit to ``via`` (the closed mouth).
        back: the edit of ``there.image`` back to the fitted expression; ``back.image`` is the
            cycle's result, ``back.synthesized`` what it drew, ``back.target`` the fitted weights.
        region: (H, W) bool pixels either edit may change (outside them the result is the photo).
    """

    there: FaceEdit
    back: FaceEdit
    region: np.ndarray


def with_expression(face: FaceFit, expression: np.ndarray, model=None) -> FaceFit:
    """``face`` with its fitted expression replaced by ``expression`` ((K_exp,) weights): the face
    of a photo edited to it. With the editor's ``model`` its ``landmarks_detected`` become that
    mesh's landmarks too (the edited photo shows them: its own mouth opening, which the edit reads
    as the photo's, :func:`editing.mouth.photo_opening`); without it they stay the input's."""
    current = face.fit.expression
    new = torch.as_tensor(np.asarray(expression), dtype=current.dtype, device=current.device)
    if new.shape != current.shape[1:]:
        raise ValueError(f"expression: expected {tuple(current.shape[1:])}, got {tuple(new.shape)}")
    moved = dataclasses.replace(face, fit=dataclasses.replace(face.fit, expression=new[None]))
    if model is None:
        return moved
    with torch.no_grad():
        shown = moved.fit.landmark_points(model, face.landmark_offset)[0].cpu().numpy()
    return dataclasses.replace(moved, landmarks_detected=shown.astype(np.float64))


def edit_and_back(editor: Editor3D, image: np.ndarray, face: FaceFit, via: ExpressionSpec) -> CycleEdit:
    """Edit ``face`` of ``image`` ((H, W, 3) uint8) to ``via``, then back to its fitted expression."""
    there = editor.edit_face(image, face, [via])[0]
    source = face.fit.expression[0].detach().cpu().double().numpy()
    names = editor.model.expression_names
    back_spec = ExpressionSpec(
        {n: float(np.clip(v, 0.0, 1.0)) for n, v in zip(names, source, strict=True)}, label="source"
    )
    back = editor.edit_face(there.image, with_expression(face, there.target, editor.model), [back_spec])[0]
    return CycleEdit(there=there, back=back, region=there.region | back.region)


def mouth_open(face: FaceFit, names, min_gap: float = 0.05, min_jaw_open: float = 0.1) -> bool:
    """Whether the fitted mouth of ``face`` is open: its inner lips at least ``min_gap`` inter-ocular
    distances apart, or its jawOpen weight at least ``min_jaw_open`` (``names``: the K_exp names)."""
    gap = landmark_measures(face.fit.landmarks_fitted[0].detach().cpu().double().numpy())["lip_gap"]
    jaw = float(face.fit.expression[0, list(names).index("jawOpen")])
    return gap >= min_gap or jaw >= min_jaw_open
