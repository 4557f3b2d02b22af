"""Where an edit's identity distance comes from: the mouth, the eyes and brows, or the resampling.

    .venv/bin/python scripts/experiments/identity_parts.py --split train --n 20 --out out/identity_parts.json

Each AFLW2000-3D face of ``--split`` with |yaw| < 30 (the first ``--n``, fitted on the ground-truth
landmark box) is edited to happy and surprise, to the same presets with only their mouth and jaw
weights, and to the full presets with the photo's own eyes and brows pasted back (the box of
landmarks 17-26 and 36-47 grown by 15 % of its width). The dlib descriptor distance to the input
(:func:`face3d.detect.dlib_detector.face_descriptor` on the input's landmarks, as
``bench_edit.py --quality`` reads identity) is compared with two edits that change no expression:
the photo shifted by one pixel and blurred by a Gaussian of 0.7 px. Writes the medians.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

EYES_AND_BROWS = np.r_[17:27, 36:48]


def _eyes_restored(edited: np.ndarray, photo: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """``edited`` with the photo's pixels in the eyes-and-brows box of ``landmarks`` (68, 2)."""
    (x0, y0), (x1, y1) = landmarks[EYES_AND_BROWS].min(0), landmarks[EYES_AND_BROWS].max(0)
    pad = 0.15 * (x1 - x0)
    ys = slice(max(int(y0 - pad), 0), int(y1 + pad))
    xs = slice(max(int(x0 - pad), 0), int(x1 + pad))
    out = edited.copy()
    out[ys, xs] = photo[ys, xs]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="train", choices=("train", "heldout"))
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--aflw", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from editing.api import EditContext, edit_fitted
    from editing.compare.quality import fit_on_box
    from editing.expressions import parse_expressions
    from face3d.detect.dlib_detector import face_descriptor
    from face3d.eval.aflw import load_aflw, select_split
    from face3d.io import atomic_write_json, read_image

    ctx = EditContext.from_dir(refine="none")
    names = ctx.fit_model.expression_names
    presets = parse_expressions("happy,surprise", names)
    mouth_only = [
        replace(
            p,
            weights={k: v for k, v in p.weights.items() if k.startswith(("mouth", "jaw"))},
            label=f"{p.label}_mouth_only",
        )  # fmt: skip
        for p in presets
    ]
    specs = [*presets, *mouth_only]
    samples = [s for s in select_split(load_aflw(args.aflw), args.split) if abs(s.yaw) < 30][: args.n]
    rows = []
    for s in tqdm(samples, desc="identity", unit="photo"):
        image = read_image(s.image_path)
        face = fit_on_box(ctx, image, s.box)
        if face is None:
            continue
        lm = face.landmarks_detected
        ref = face_descriptor(image, lm)

        def dist(img, lm=lm, ref=ref):
            return float(np.linalg.norm(face_descriptor(img, lm) - ref))

        out = edit_fitted(image, [face], specs, ctx).outputs
        row = {"image": s.image_path.name, **{sp.label: dist(out[sp.label]) for sp in specs}}
        for p in presets:
            row[f"{p.label}_eyes_restored"] = dist(_eyes_restored(out[p.label], image, lm))
        row["shift_1px"] = dist(np.roll(image, 1, axis=1))
        row["blur_0.7px"] = dist(cv2.GaussianBlur(image, (0, 0), 0.7))
        rows.append(row)
    keys = [k for k in rows[0] if k != "image"] if rows else []
    medians = {k: round(float(np.median([r[k] for r in rows])), 3) for k in keys}
    for k, v in medians.items():
        print(f"{k:28s} {v:.3f}")
    out_path = Path(args.out)
    summary = {"command": sys.argv, "faces": len(rows), "medians": medians, "rows": rows}
    atomic_write_json(out_path, summary)
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
