"""Does extending the warp's motion from the *nearest* known pixel keep silhouettes in place?

`editing.warp.dense_motion` gives an unknown pixel (background beside the face, skin the photo
hid) its immediate neighbours' motion within ``fill_px`` and, beyond, the wide Gaussian mean of the
known motion (``reach_frac`` of the face size). Beside a 45° nose that mean is the upper lip's
and cheek's motion, and the nose's silhouette is dragged (docs/history.md). The variant tried here
blends, beyond the local fill, the motion of the nearest known pixel (lightly smoothed, so the
boundaries between two surfaces' territories do not crease) into the wide mean with distance:
``w = exp(-distance / (near_frac * face size))``. The shipped function is not changed; this
script patches it for its own run.

Per face (held-out half, ``--per-bin`` per |yaw| bin, happy): the pixels whose colour changed
by more than 40 levels, speckles and the dlib identity distance, shipped vs variant, and the
pixels where the two differ by more than 20 levels; a 3x crop (photo | shipped | variant) around
those goes to ``--out``'s folder.

    .venv/bin/python scripts/experiments/silhouette_extension.py --per-bin 10 --out out/silhouette/s1.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

import editing.edit3d as edit3d
from editing.api import EditContext, edit_fitted
from editing.compare.quality import fit_on_box, speckles
from editing.expressions import parse_expressions
from editing.warp import dense_motion, nearest_pixel
from face3d.detect import face_descriptor
from face3d.eval import BIN_NAMES, yaw_bin
from face3d.eval.aflw import drawn_samples, load_aflw
from face3d.io import atomic_write_json, read_image, write_image


def nearest_motion(motion, known, face_size, config, near_frac=0.04, smooth_px=2.0):
    """:func:`dense_motion` with the wide mean replaced, beyond the local fill, by the nearest
    known pixel's motion blended into it with distance."""
    base = dense_motion(motion, known, face_size, config)
    if known.all() or not known.any():
        return base
    dist, ys, xs = nearest_pixel(known)
    near = motion.astype(np.float32)[ys, xs]
    near = cv2.GaussianBlur(near, (0, 0), smooth_px)
    w = np.exp(-dist / max(1.0, near_frac * face_size))[..., None]  # far off, the shipped field's decay
    out = np.where(known[..., None], base, w * near + (1 - w) * base)
    return out.astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aflw", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--per-bin", type=int, default=10)
    ap.add_argument("--images", default="", help="comma-separated image names instead of a sample")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ctx = EditContext.from_dir(refine="none")
    spec = parse_expressions("happy", ctx.fit_model.expression_names)
    samples = drawn_samples(load_aflw(args.aflw), args.split, args.per_bin, args.images)
    out_dir = Path(args.out).with_suffix("")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    shipped = edit3d.dense_motion
    for s in tqdm(samples, desc="silhouette", unit="img"):
        image = read_image(s.image_path)
        face = fit_on_box(ctx, image, s.box)
        if face is None:
            continue
        outs = {}
        for name, fn in (("shipped", shipped), ("nearest", nearest_motion)):
            edit3d.dense_motion = fn
            outs[name] = edit_fitted(image, [face], spec, ctx).outputs["happy"]
        edit3d.dense_motion = shipped
        ref = face_descriptor(image, face.landmarks_detected)
        row = {"image": s.image_path.name, "bin": BIN_NAMES[yaw_bin(s.yaw)]}
        for name, out in outs.items():
            row[f"{name}_speckles"] = speckles(image, out)
            moved = face_descriptor(out, face.landmarks_detected)
            row[f"{name}_identity"] = float(np.linalg.norm(moved - ref))
            row[f"{name}_changed40"] = int((np.abs(out.astype(int) - image).max(-1) > 40).sum())
        diff = np.abs(outs["shipped"].astype(int) - outs["nearest"]).max(-1)
        row["differ_px"] = int((diff > 20).sum())
        if row["differ_px"]:
            ys, xs = np.nonzero(diff > 20)
            cy, cx = int(np.median(ys)), int(np.median(xs))
            y0, x0 = max(cy - 40, 0), max(cx - 40, 0)
            crops = [x[y0 : y0 + 80, x0 : x0 + 80] for x in (image, outs["shipped"], outs["nearest"])]
            big = cv2.resize(np.hstack(crops), None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
            write_image(out_dir / f"{s.image_path.stem}.png", big)
        rows.append(row)
    summary = {}
    for b in BIN_NAMES:
        mine = [r for r in rows if r["bin"] == b]
        if mine:
            keys = [k for k in mine[0] if k not in ("image", "bin")]
            summary[b] = {k: float(np.median([r[k] for r in mine])) for k in keys}
    atomic_write_json(Path(args.out), {"command": " ".join(sys.argv), "summary": summary, "rows": rows})
    for b, v in summary.items():
        print(b, {k: round(x, 3) for k, x in v.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
