"""What holding the surface behind an occluding contour (``WarpConfig.occluder_band_frac``) changes.

    .venv/bin/python scripts/experiments/occluder_band.py --per-bin 15 --out out/occluder_band/b1.json

Per held-out face (``--per-bin`` per |yaw| bin, fitted on the ground-truth box, happy and surprise),
the edit with the band off (``occluder_band_frac=0``) and on (shipped): the pixels darkened by more
than 60 levels inside the nose's landmark box grown by 30 % of its width (where a dragged nose
rim shows), speckles and the dlib identity distance, and the pixels where the two edits differ by
more than 20 levels; a 3x crop (photo | off | on) around those goes to ``--out``'s folder.
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

from editing.api import EditContext, edit_fitted
from editing.compare.quality import fit_on_box, speckles
from editing.expressions import parse_expressions
from editing.warp import WarpConfig
from face3d.detect import face_descriptor
from face3d.eval import BIN_NAMES, yaw_bin
from face3d.eval.aflw import drawn_samples, load_aflw
from face3d.io import atomic_write_json, read_image, write_image

LUMA = np.array([0.299, 0.587, 0.114])


def nose_darkened(image: np.ndarray, out: np.ndarray, landmarks: np.ndarray) -> int:
    """Pixels of the nose's landmark box (27-35, grown by 30 % of its width sideways) that the edit
    darkened by more than 60 levels."""
    (x0, y0), (x1, y1) = landmarks[27:36].min(0), landmarks[27:36].max(0)
    g = 0.3 * (x1 - x0)
    darker = image.astype(float) @ LUMA - out.astype(float) @ LUMA > 60
    return int(darker[max(int(y0), 0) : int(y1) + 1, max(int(x0 - g), 0) : int(x1 + g) + 1].sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aflw", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--per-bin", type=int, default=15)
    ap.add_argument("--images", default="", help="comma-separated image names instead of a sample")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ctx = EditContext.from_dir(refine="none")
    shipped = ctx.editor.config
    off = replace(shipped, warp=replace(shipped.warp, occluder_band_frac=0.0))
    assert shipped.warp.occluder_band_frac > 0 and WarpConfig().occluder_band_frac > 0
    specs = parse_expressions("happy,surprise", ctx.fit_model.expression_names)
    samples = drawn_samples(load_aflw(args.aflw), args.split, args.per_bin, args.images)
    out_dir = Path(args.out).with_suffix("")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in tqdm(samples, desc="band", unit="img"):
        image = read_image(s.image_path)
        face = fit_on_box(ctx, image, s.box)
        if face is None:
            continue
        outs = {}
        for name, cfg in (("off", off), ("on", shipped)):
            ctx.editor.config = cfg
            outs[name] = edit_fitted(image, [face], specs, ctx).outputs
        ctx.editor.config = shipped
        ref = face_descriptor(image, face.landmarks_detected)
        lm = face.fit.landmarks_fitted[0].numpy()
        for spec in specs:
            t = spec.label
            row = {"image": s.image_path.name, "bin": BIN_NAMES[yaw_bin(s.yaw)], "target": t}
            for name in outs:
                out = outs[name][t]
                row[f"{name}_speckles"] = speckles(image, out)
                row[f"{name}_identity"] = float(
                    np.linalg.norm(face_descriptor(out, face.landmarks_detected) - ref)
                )
                row[f"{name}_nose_darkened"] = nose_darkened(image, out, lm)
            diff = np.abs(outs["off"][t].astype(int) - outs["on"][t]).max(-1)
            row["differ_px"] = int((diff > 20).sum())
            if row["differ_px"]:
                ys, xs = np.nonzero(diff > 20)
                cy, cx = int(np.median(ys)), int(np.median(xs))
                y0, x0 = max(cy - 40, 0), max(cx - 40, 0)
                crops = [x[y0 : y0 + 80, x0 : x0 + 80] for x in (image, outs["off"][t], outs["on"][t])]
                big = cv2.resize(np.hstack(crops), None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
                write_image(out_dir / f"{s.image_path.stem}_{t}.png", big)
            rows.append(row)
    summary = {}
    for b in BIN_NAMES:
        for t in (spec.label for spec in specs):
            mine = [r for r in rows if r["bin"] == b and r["target"] == t]
            if mine:
                keys = [k for k in mine[0] if k not in ("image", "bin", "target")]
                summary[f"{b} {t}"] = {k: float(np.median([r[k] for r in mine])) for k in keys}
                summary[f"{b} {t}"]["faces_nose_darkened_off_on"] = [
                    sum(r["off_nose_darkened"] > 5 for r in mine),
                    sum(r["on_nose_darkened"] > 5 for r in mine),
                ]
    atomic_write_json(Path(args.out), {"command": " ".join(sys.argv), "summary": summary, "rows": rows})
    for k, v in summary.items():
        print(k, {kk: (round(x, 3) if isinstance(x, float) else x) for kk, x in v.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
