"""The README's edit pictures: the demo grid, the profile grid and full-resolution close-ups.

    .venv/bin/python scripts/figures/edit_figures.py --out docs --threads 1

* ``demo_grid.png``: the built-in example edited to each demo expression (input | the edited head
  | output), what ``make demo`` writes.
* ``profile_grid.png``: two AFLW2000-3D profiles (about 70 degrees of yaw), input | happy |
  surprise | open mouth (each a 256 px crop).
* ``edit_closeup.png``: the mouth and the eyes before and after, at full resolution (each pixel
  drawn as a 3 x 3 block), for a frontal, a 45-degree and a profile face.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

AFLW = Path("../shared/data/aflw2000-3d-dev")
PROFILES = ("image00010.jpg", "image00022.jpg")
HALF_PROFILE = "image02295.jpg"  # held-out, about 45 degrees of yaw


def _closeups(image: np.ndarray, face, outputs: list[np.ndarray], half: int) -> np.ndarray:
    """Rows mouth / eyes: before | each output, crops of 2 * half px around the landmarks."""
    lm = face.fit.landmarks_fitted[0].numpy()
    rows = []
    for part in (lm[48:68], lm[36:48]):
        cx, cy = part.mean(0).round().astype(int)
        crops = []
        for img in (image, *outputs):
            pad = np.pad(img, ((half, half), (half, half), (0, 0)), mode="edge")
            crops.append(pad[cy : cy + 2 * half, cx : cx + 2 * half])
        rows.append(np.concatenate(crops, 1))
    return np.concatenate(rows, 0).repeat(3, 0).repeat(3, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--refine", choices=("auto", "none"), default="auto")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from editing.api import EditContext, edit_fitted, grid_image
    from editing.expressions import parse_expressions
    from face3d.demo import DEMO_EXPRESSIONS, example_image
    from face3d.fit import fit_image
    from face3d.io import read_image, write_image

    out = Path(args.out)
    ctx = EditContext.from_dir(refine=args.refine)
    names = ctx.fit_model.expression_names

    def edit(image, labels):
        faces = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector, 1, regressor=ctx.regressor)
        return faces[0], edit_fitted(image, faces, parse_expressions(labels, names), ctx)

    astronaut = example_image()
    face, res = edit(astronaut, DEMO_EXPRESSIONS)
    write_image(out / "demo_grid.png", grid_image(astronaut, res))
    closeups = [_closeups(astronaut, face, [res.outputs["surprise"], res.outputs["open_mouth"]], 28)]

    rows = []
    for name in (*PROFILES, HALF_PROFILE):
        image = read_image(AFLW / name)
        face, res = edit(image, "happy,surprise,open_mouth")
        if name in PROFILES:
            lm = face.fit.landmarks_fitted[0].numpy()
            (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
            r = int(0.8 * max(x1 - x0, y1 - y0))
            cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
            crop = (slice(max(cy - r, 0), cy + r), slice(max(cx - r, 0), cx + r))
            tiles = [image[crop]] + [res.outputs[k][crop] for k in res.labels]
            tiles = [cv2.resize(t, (256, 256), interpolation=cv2.INTER_AREA) for t in tiles]
            rows.append(np.concatenate(tiles, 1))
        closeups.append(_closeups(image, face, [res.outputs["surprise"], res.outputs["open_mouth"]], 28))
    write_image(out / "profile_grid.png", np.concatenate(rows, 0))
    write_image(out / "edit_closeup.png", np.concatenate(closeups, 0))
    print(f"wrote {out / 'demo_grid.png'}, {out / 'profile_grid.png'}, {out / 'edit_closeup.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
