"""Held-out AFLW2000-3D faces with the ground-truth 68 points and one or more regressors' points.

    .venv/bin/python scripts/figures/regressor_figure.py --weights OLD_WEIGHTS assets/regressor \\
        --labels "before" "shipped" --out docs/regressor_profiles.png

Rows: one per weights folder (ground truth in green, the network's points in red, its NME in the
corner); columns: ``--n`` faces of the held-out half in ``--bin`` (evenly spaced in sorted order),
cropped to 1.6x the ground-truth box, protocol box, default test-time augmentation.
``--images`` picks the faces by file name instead; ``--upright-rows`` draws each weights folder
twice, without the upright search and with it:

    .venv/bin/python scripts/figures/regressor_figure.py --images image00497 image00617 image03116 \\
        image04024 image04157 --upright-rows --labels shipped --out docs/upright_search.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from face3d.argtypes import int_at_least


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--weights", nargs="+", default=["assets/regressor"], help="regressor folders")
    ap.add_argument("--labels", nargs="*", default=None, help="one row label per weights folder")
    ap.add_argument(
        "--bin", type=int, default=2, choices=(0, 1, 2), help="|yaw| bin: 0 [0,30) 1 [30,60) 2 [60,90]"
    )
    ap.add_argument("--n", type=int, default=6, help="faces (columns)")
    ap.add_argument("--images", nargs="*", default=None, help="held-out file names (stems) instead of --bin")
    ap.add_argument(
        "--upright-rows", action="store_true", help="each folder without, then with the upright search"
    )
    ap.add_argument("--size", type=int, default=200, help="tile side, pixels")
    ap.add_argument("--out", default="docs/regressor_profiles.png")
    ap.add_argument("--threads", type=int_at_least(1), default=1, help="torch threads")
    args = ap.parse_args(argv)
    labels = args.labels or [Path(w).name for w in args.weights]
    if len(labels) != len(args.weights):
        print("regressor_figure: give one --labels entry per --weights folder", file=sys.stderr)
        return 2

    import cv2
    import torch

    from face3d.eval.aflw import load_aflw, select_split
    from face3d.eval.metrics import nme, yaw_bin
    from face3d.io import atomic_write_bytes, read_image
    from face3d.regress.infer import TTA_SCALES, LandmarkRegressor

    torch.set_num_threads(args.threads)
    held = select_split(load_aflw(args.data), "heldout")
    if args.images:
        samples = [s for s in held if s.image_path.stem in set(args.images)]
    else:
        samples = [s for s in held if yaw_bin(s.yaw) == args.bin]
    if not samples:
        print(
            f"regressor_figure: no held-out AFLW2000-3D images in {args.data} for that bin", file=sys.stderr
        )
        return 2
    if not args.images:
        samples = [
            samples[i] for i in np.linspace(0, len(samples) - 1, min(args.n, len(samples))).astype(int)
        ]
    rows = []
    runs = [(w, lab, True) for w, lab in zip(args.weights, labels, strict=True)]
    if args.upright_rows:
        runs = [
            (w, f"{lab}, {name}", on)
            for w, lab, _ in runs
            for name, on in (("no search", False), ("search", True))
        ]
    for folder, label, upright in runs:
        reg = LandmarkRegressor.from_pretrained(folder, flip=True, scales=TTA_SCALES, upright=upright)
        tiles = []
        for s in samples:
            image = read_image(s.image_path)
            pred = reg.predict(image, s.box).landmarks
            (x0, y0), (x1, y1) = s.landmarks.min(0), s.landmarks.max(0)
            side = 1.6 * max(x1 - x0, y1 - y0)
            k = args.size / side
            A = np.array(
                [[k, 0, args.size / 2 - k * (x0 + x1) / 2], [0, k, args.size / 2 - k * (y0 + y1) / 2]]
            )
            tile = cv2.warpAffine(image, A, (args.size, args.size), borderMode=cv2.BORDER_CONSTANT)
            for pts, colour in ((s.landmarks, (0, 220, 0)), (pred, (255, 40, 40))):
                for x, y in pts @ A[:, :2].T + A[:, 2]:
                    cv2.circle(tile, (int(round(x)), int(round(y))), 2, colour, -1, cv2.LINE_AA)
            text = f"{label}: {nme(pred, s.landmarks):.1f}%"
            cv2.rectangle(tile, (0, 0), (args.size - 1, 19), (0, 0, 0), -1)
            cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
        rows.append(np.concatenate(tiles, 1))
    grid = np.concatenate(rows, 0)
    ok, png = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(args.out), png.tobytes())
    print(f"wrote {args.out} ({len(rows)} rows x {len(samples)} faces)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
