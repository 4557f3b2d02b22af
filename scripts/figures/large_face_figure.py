"""A large face edited at the cap and at full resolution, side by side at full resolution.

    .venv/bin/python scripts/figures/large_face_figure.py --out docs/large_face.png --threads 1

The photo (default: the built-in example, upscaled so its face spans about 1,000 px) is edited to
``--expression`` twice: with the default ``EditConfig.max_face_px`` (the edit made at 512 px and
its layers carried to full resolution) and with the cap off. Columns: input | capped | full
resolution; rows: the mouth and an eye, crops of the full-resolution pixels. The title line of
the printed summary gives both times and the PSNR between the two over the changed pixels.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default=None, help="a photo (default: the built-in example)")
    ap.add_argument("--face-px", type=int, default=1000, help="upscale so the face spans this many px")
    ap.add_argument("--expression", default="open_mouth")
    ap.add_argument("--half", type=int, default=240, help="half the side of each crop, px")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="docs/large_face.png")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from editing.api import EditContext, edit_fitted
    from editing.edit3d import Editor3D
    from editing.expressions import parse_expressions
    from face3d.demo import example_image
    from face3d.fit import fit_image
    from face3d.io import read_image, write_image

    image = example_image() if args.image is None else read_image(args.image)
    ctx = EditContext.from_dir(refine="none")
    faces = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector, regressor=ctx.regressor)
    if not faces:
        print("no face found", file=sys.stderr)
        return 1
    span = float(np.ptp(faces[0].fit.landmarks_fitted[0].numpy(), axis=0).max())
    s = args.face_px / span
    size = (round(image.shape[1] * s), round(image.shape[0] * s))
    image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    faces = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector, regressor=ctx.regressor)[:1]
    specs = parse_expressions(args.expression, ctx.fit_model.expression_names)
    full = EditContext(ctx.fit_model, Editor3D(ctx.editor.model, replace(ctx.editor.config, max_face_px=0)))
    outs, secs = [], []
    for c in (ctx, full):
        t0 = time.perf_counter()
        outs.append(edit_fitted(image, faces, specs, c).outputs[specs[0].label])
        secs.append(time.perf_counter() - t0)
    changed = (outs[0] != image).any(-1) | (outs[1] != image).any(-1)
    err = float(((outs[0][changed].astype(np.float64) - outs[1][changed]) ** 2).mean())
    lm = faces[0].fit.landmarks_fitted[0].numpy()
    rows = []
    for part in (lm[48:68], lm[36:42]):
        cx, cy = part.mean(0).round().astype(int)
        h = args.half
        crops = [np.pad(x, ((h, h), (h, h), (0, 0)), mode="edge")[cy : cy + 2 * h, cx : cx + 2 * h]
                 for x in (image, *outs)]  # fmt: skip
        rows.append(np.concatenate(crops, 1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_image(args.out, np.concatenate(rows, 0))
    psnr = 10 * np.log10(255.0**2 / max(err, 1e-12))
    print(f"face {args.face_px} px, {size[0]}x{size[1]}: capped {secs[0]:.1f} s, full resolution"
          f" {secs[1]:.1f} s, PSNR between them {psnr:.1f} dB over {int(changed.sum())} px -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
