"""Which extra test-time views large-yaw faces get, and from which yaw (``face3d.regress.views``).

    .venv/bin/python scripts/experiments/profile_views.py --split train --out out/profile_views_train.json
    .venv/bin/python scripts/experiments/profile_views.py --split heldout --out out/profile_views_heldout.json

Protocol mode (the ground-truth 68-point box), the shipped network alone: every AFLW2000-3D image
of the split is regressed with the default mirrored 3-scale crops, and again with each candidate
set of extra views added (one pass over all its views). For each set and each ``--thresholds``
value T, faces the first pass puts at |yaw| >= T take the pass with the extra views, the others
the first pass; writes the NME (%) per |yaw| bin and the share of faces that pay for the views.
Choose on ``--split train`` (the network was fine-tuned on it), report on ``heldout``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from tqdm import tqdm

from face3d.argtypes import float_list
from face3d.eval.aflw import SPLITS, select_split
from face3d.regress.views import PROFILE_VIEWS, View

SHIFTS = tuple(View(shift=d) for d in ((0.04, 0.0), (-0.04, 0.0), (0.0, 0.04), (0.0, -0.04)))
TURNS = (View(angle=8.0), View(angle=-8.0))
CANDIDATES = {
    "shifts": SHIFTS,
    "turns": TURNS,
    "shifts+turns": PROFILE_VIEWS,
    "turns x3 scales": tuple(View(s, a) for s in (0.9, 1.0, 1.1) for a in (8.0, -8.0)),
    "shifts+turns x3 scales": (*PROFILE_VIEWS, *(View(s, a) for s in (0.9, 1.1) for a in (8.0, -8.0))),
}
"""Candidate extra views (each also mirrored); ``shifts+turns`` is :data:`PROFILE_VIEWS`."""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--split", default="train", choices=SPLITS)
    ap.add_argument("--per-bin", type=int, default=None, help="at most N images per yaw bin (default all)")
    ap.add_argument("--thresholds", type=float_list(0), default="0,30,45,60", help="comma list of |yaw| T")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="out/profile_views.json")
    args = ap.parse_args(argv)

    from face3d.eval.aflw import load_aflw, stratified
    from face3d.eval.metrics import bin_line, bin_table, nme
    from face3d.fit.pipeline import default_regressor
    from face3d.io import atomic_write_json, read_image
    from face3d.regress.infer import LandmarkRegressor

    samples = stratified(select_split(load_aflw(args.data), args.split), args.per_bin)
    first = default_regressor(profile_views=False)  # the mirrored 3-scale crops alone
    if not samples or first is None:
        print("profile_views: needs the AFLW2000-3D dev set and the shipped regressor", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    passes = {
        name: LandmarkRegressor(
            first.net, flip=True, scales=first.scales, profile_views=views, profile_min_yaw=0.0
        )
        for name, views in CANDIDATES.items()
    }
    yaws, base, extra = [], [], {name: [] for name in CANDIDATES}
    for s in tqdm(samples, desc="profile_views"):
        image = read_image(s.image_path)
        out = first.predict(image, s.box)
        yaws.append(abs(out.yaw))
        base.append(nme(out.landmarks, s.landmarks))
        for name, reg in passes.items():
            extra[name].append(nme(reg.predict(image, s.box).landmarks, s.landmarks))
    yaws = np.array(yaws)
    results = {"none": bin_table([(s.yaw, v) for s, v in zip(samples, base, strict=True)])}
    print(f"{'first pass only':>34}: {bin_line(results['none'])}")
    for name, vals in extra.items():
        results[name] = {"views": 2 * len(CANDIDATES[name])}
        for t in args.thresholds:
            chosen = [
                (s.yaw, v if y >= t else b) for s, v, b, y in zip(samples, vals, base, yaws, strict=True)
            ]
            share = round(float(np.mean(yaws >= t)), 3)
            results[name][f"{t:g}"] = {"share_of_faces": share, **bin_table(chosen)}
            print(f"{name:>24} T={t:<4g} ({100 * share:3.0f} %): {bin_line(results[name][f'{t:g}'])}")
    out = {"split": args.split, "images": len(samples), "results": results}
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
