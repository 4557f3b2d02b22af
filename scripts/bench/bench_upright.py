"""Upright search on AFLW2000-3D photos turned 0-3 quarter turns, protocol mode (GT 68-point box).

    .venv/bin/python scripts/bench/bench_upright.py --data ../shared/data/aflw2000-3d-dev --split heldout \\
        --out out/bench_upright.json

Every image is turned whole (``np.rot90``, its ground truth with it) and regressed by the default
pipeline's regressor (mirrored crop, three crop scales) with the upright search and without it.
Writes the NME per |yaw| bin and turn for both (and the mean over all images), how often the
search turned the crops (it should turn every turned face and no upright one), and the upright
head's accuracy on single unaugmented crops (:func:`face3d.regress.upright.upright_accuracy`).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev", help="AFLW2000-3D dev folder")
    ap.add_argument("--split", default="heldout", choices=("all", "train", "heldout"))
    ap.add_argument("--images", type=int, default=None, help="only the first N images of the split")
    ap.add_argument("--weights", default=None, help="regressor folder (default assets/regressor)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--out", default="out/bench_upright.json")
    args = ap.parse_args(argv)

    from dataclasses import asdict

    import torch
    from tqdm import tqdm

    from face3d.detect.boxes import landmark_box
    from face3d.eval.aflw import load_aflw, select_split
    from face3d.eval.aflw_crops import AFLWCrops
    from face3d.eval.metrics import bin_table, nme
    from face3d.io import atomic_write_json, read_image
    from face3d.regress.infer import TTA_SCALES, LandmarkRegressor
    from face3d.regress.network import RegressorNet
    from face3d.regress.upright import quarter_turn_affine, upright_accuracy

    torch.set_num_threads(args.threads)
    samples = select_split(load_aflw(args.data), args.split)[: args.images]
    if not samples:
        print(f"bench_upright: no AFLW2000-3D images in {args.data}", file=sys.stderr)
        return 2
    net = RegressorNet.from_pretrained(args.weights)
    regs = {
        "upright": LandmarkRegressor(net, flip=True, scales=TTA_SCALES),
        "no_search": LandmarkRegressor(net, flip=True, scales=TTA_SCALES, upright=False),
    }
    values = {(name, t): [] for name in regs for t in range(4)}
    turned = {(name, t): 0 for name in regs for t in range(4)}
    for s in tqdm(samples, desc="bench_upright", unit="img"):
        image = read_image(s.image_path)
        H, W = image.shape[:2]
        for t in range(4):
            A = quarter_turn_affine(t, W, H)
            gt = s.landmarks @ A[:, :2].T + A[:, 2]
            img_t = np.ascontiguousarray(np.rot90(image, t))
            for name, reg in regs.items():
                out = reg.predict(img_t, landmark_box(gt))
                values[name, t].append((s.yaw, nme(out.landmarks, gt)))
                turned[name, t] += out.turns != 0
    crops = AFLWCrops(samples, net.config.size, net.config.crop_scale).unaugmented()[0]
    head = upright_accuracy(net, crops)
    result = {
        "split": args.split,
        "images": len(samples),
        "weights": str(args.weights or "assets/regressor"),
        "head_single_crop": asdict(head),
        **{
            name: {
                f"turns_{t}": {
                    **bin_table(values[name, t]),
                    "mean": round(float(np.mean([v for _, v in values[name, t]])), 3),
                    "turned": turned[name, t],
                }
                for t in range(4)
            }
            for name in regs
        },
    }
    atomic_write_json(args.out, result)
    acc, found = np.round(head.accuracy, 4), np.round(head.found, 4)
    print(f"upright head (single crops): accuracy {acc}, upright after the search {found}")
    for name in regs:
        rows = [result[name][f"turns_{t}"] for t in range(4)]
        cells = [f"{t * 90:>3} deg {r['mean']:.2f} ({r['turned']} turned)" for t, r in enumerate(rows)]
        print(f"{name:>10}: mean NME " + ", ".join(cells))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
