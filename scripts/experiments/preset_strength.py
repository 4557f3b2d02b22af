"""How far a preset, scaled, takes near-frontal faces toward real faces of its class.

    .venv/bin/python scripts/experiments/preset_strength.py --preset happy --scales 1.0,1.2,1.4 \
        --split train --n 20 --out out/preset_strength_happy.json

Each AFLW2000-3D face of ``--split`` with |yaw| < 30 (the first ``--n``, fitted on the ground-truth
landmark box) is edited to the preset with every weight multiplied by each scale (clamped to 1),
and :func:`editing.compare.quality.measure_photo` reads the result with dlib's landmarks against the
median FER2013 face of the class (``completeness_dlib``: 1 = all the way). Writes the median
completeness and identity per scale. ``--facs`` measures another recipe (e.g. ``6E+12E+25``) as that class.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from face3d.argtypes import float_list


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="happy", choices=("happy", "surprise"))
    ap.add_argument("--scales", type=float_list(0.0, 3.0), default=[1.0, 1.2, 1.4])
    ap.add_argument("--facs", default=None, help="a FACS recipe measured instead of the preset's weights")
    ap.add_argument("--split", default="train", choices=("train", "heldout"))
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--fer-n", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--aflw", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--fer", default="../shared/data/fer2013/fer2013_48.npz")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from editing.api import EditContext
    from editing.compare.quality import class_references, measure_photo
    from editing.expressions import ExpressionSpec, facs_weights, load_presets
    from face3d.detect import face_descriptor
    from face3d.eval import select_split
    from face3d.eval.aflw import load_aflw
    from face3d.io import atomic_write_json, read_image

    ctx = EditContext.from_dir(refine="none")
    fer = np.load(args.fer)
    classes = [str(c) for c in fer["classes"]]
    faces48 = {args.preset: fer["x_test"][fer["y_test"] == classes.index(args.preset)][: args.fer_n]}
    references = class_references(ctx, faces48)
    samples = [s for s in select_split(load_aflw(args.aflw), args.split) if abs(s.yaw) < 30][: args.n]
    weights = load_presets()[args.preset] if args.facs is None else facs_weights(args.facs)
    result = {"command": " ".join(sys.argv), "weights": weights, "scales": {}}
    for scale in args.scales:
        spec = ExpressionSpec(weights={k: min(1.0, v * scale) for k, v in weights.items()}, label=args.preset)
        rows = []
        for s in tqdm(samples, desc=f"x{scale}", unit="img"):
            got = measure_photo(read_image(s.image_path), s.box, ctx, [spec], references, face_descriptor)
            rows += got or []
        result["scales"][str(scale)] = {
            "completeness_dlib": float(np.nanmedian([r["completeness_dlib"] for r in rows])),
            "identity": float(np.median([r["identity"] for r in rows])),
            "n": len(rows),
        }
        print(scale, result["scales"][str(scale)])
    atomic_write_json(Path(args.out), result)
    print(json.dumps(result["scales"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
