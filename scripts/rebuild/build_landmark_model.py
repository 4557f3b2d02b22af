#!/usr/bin/env python
"""Build the ``2d-warp`` baseline's 2D expression model from the ICT face model.

    .venv/bin/python scripts/rebuild/build_landmark_model.py --out assets/expressions/landmark_model.npz

The mean face (the template) is seen from the front with an orthographic camera (model x -> image
x, model y -> image -y). Each of the 53 expression shapes at weight 1 moves its 68 landmark
vertices; that 2D displacement, divided by the template's inter-ocular distance (the distance
between the eye centres, each the mean of its two corners), is the shape's basis row
(:class:`editing.landmark_model.LandmarkModel`). The template's landmarks in the same frame are the
reference. The model being linear and the camera orthographic, the 2D model is exactly the
projection of the 3D one at frontal pose.

The mouth fill's geometry is read from the same model: how far the upper incisors' edge lies below
the neutral upper inner lip, how far the lower incisors reach above the lower inner lip with the jaw
fully open (``jawOpen`` = 1), the visible arch's half width and its depth behind the front incisors
per horizontal distance from the midline (the depth falloff of :mod:`editing.mouth`).
"""

from __future__ import annotations

import argparse
import shlex
import sys

import numpy as np

from editing.landmark_model import LandmarkModel

ARCH_BINS_CM = np.arange(0.0, 2.6, 0.25)
"""Horizontal distances from the midline (cm) where the teeth arch depth is tabulated."""


def project(points: np.ndarray) -> np.ndarray:
    """(..., 3) model points (cm, y up) -> (..., 2) frontal orthographic image points (cm, y down)."""
    return np.stack([points[..., 0], -points[..., 1]], -1)


def teeth_geometry(template: np.ndarray, jaw: np.ndarray, teeth: slice, ids: list[int]) -> dict:
    """Teeth placement (cm) from the template ``(V, 3)``, the ``jawOpen`` delta ``(V, 3)``, the teeth
    vertex range and the 68 landmark vertex ids."""
    landmarks = template[ids]
    t, moved = template[teeth], jaw[teeth]
    upper = np.linalg.norm(moved, axis=1) < 0.5  # the upper teeth stay with the skull
    front_z = t[:, 2].max()
    middle = np.abs(t[:, 0]) < 1.0
    front = t[:, 2] > front_z - 1.5
    upper_edge = t[upper & middle & front, 1].min()
    lower_open = (t + moved)[~upper & middle, 1].max()
    lip_open = landmarks[66, 1] + jaw[ids[66], 1]
    depth = []
    for x in ARCH_BINS_CM:
        near = upper & (np.abs(np.abs(t[:, 0]) - x) < 0.15)
        depth.append(front_z - t[near, 2].max() if near.any() else np.nan)
    depth = np.array(depth)
    keep = np.isfinite(depth)
    return {
        "upper_cm": float(landmarks[62, 1] - upper_edge),
        "lower_cm": float(lower_open - lip_open),
        "half_width_cm": float(np.abs(t[upper & front, 0]).max()),
        "arch": np.stack([ARCH_BINS_CM[keep], depth[keep]], 1),
    }


def build(model) -> tuple[LandmarkModel, dict]:
    """The 2D model and a summary of it, from a full-head :class:`face3d.model.MorphableModel`."""
    template = model.template.double().numpy()
    basis3 = model.expression_basis.double().numpy().reshape(model.n_expression, -1, 3)
    ids = list(model.landmark_ids.tolist())
    lm = project(template[ids])
    eyes = np.stack([lm[[36, 39]].mean(0), lm[[42, 45]].mean(0)])
    iod = float(np.linalg.norm(eyes[1] - eyes[0]))
    origin = lm[[36, 39, 42, 45]].mean(0)
    reference = (lm - origin) / iod
    basis = project(basis3[:, ids]) / iod
    jaw = basis3[list(model.expression_names).index("jawOpen")]
    a, b = model.regions["teeth"]
    teeth = teeth_geometry(template, jaw, slice(a, b + 1), ids)
    out = LandmarkModel(
        names=tuple(model.expression_names),
        reference=reference,
        basis=basis,
        iod_cm=iod,
        upper_teeth=teeth["upper_cm"] / iod,
        lower_teeth=teeth["lower_cm"] / iod,
        teeth_half_width=teeth["half_width_cm"] / iod,
        arch_depth=teeth["arch"],
    )
    summary = {k: round(v, 4) for k, v in teeth.items() if k != "arch"}
    summary.update(iod_cm=round(iod, 4), max_offset=round(float(np.abs(basis).max()), 4))
    return out, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", default="assets/expressions/landmark_model.npz")
    ap.add_argument("--model-dir", default=None, help="ICT-FaceKit folder or archive (default: search)")
    args = ap.parse_args(argv)
    from face3d.model import MorphableModel

    model = MorphableModel.from_dir(args.model_dir, subset="full")
    landmark_model, summary = build(model)
    given = argv if argv is not None else sys.argv[1:]
    command = "scripts/rebuild/build_landmark_model.py " + shlex.join(given)
    landmark_model.save(args.out, meta={"command": command, **summary})
    print(f"wrote {args.out}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
