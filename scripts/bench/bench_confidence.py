"""Does the regressor's face confidence tell faces from face-free windows? Held-out data only.

    .venv/bin/python scripts/bench/bench_confidence.py --weights runs/old/final assets/regressor \\
        --out out/bench_confidence.json

For each weights folder, single crops (no mirroring: the detection fallback's coarse pass), on
three sets the fine-tunes never read:

* **faces**: the held-out half of AFLW2000-3D dev (``face3d.eval.aflw.split_aflw``), each face as its
  inference crop and as one crop jittered like a sliding window (shift +-0.15, scale +-0.2, mirror);
* **held-out windows**: face-free windows of those photos (``face3d.eval.face_free.negative_batch``,
  fixed seed, no colour jitter), showing at most a quarter of the face box;
* **face-free photos**: every sliding window (``proposals.window_crops``, the fallback's default
  grid) of the 57 skimage images and crops of ``face3d.eval.face_free``; reported per window and
  per image (its best window, what the fallback would pass on).

Writes ``face3d.eval.face_free.confidence_report`` per set and weights to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    import torch

    from face3d.eval.aflw import load_aflw, select_split
    from face3d.eval.aflw_crops import AFLWCrops, AugConfig
    from face3d.eval.face_free import NegativeConfig, confidence_report, negative_batch, no_face_images
    from face3d.io import atomic_write_json
    from face3d.regress.infer import LandmarkRegressor
    from face3d.regress.proposals import ProposalConfig, coarse_logits, window_crops, window_sides

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--weights", nargs="+", default=[None], help="weights folders (default assets/regressor)")
    ap.add_argument("--negatives", type=int, default=2000, help="held-out face-free windows")
    ap.add_argument("--out", default="out/bench_confidence.json")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    samples = select_split(load_aflw(args.data), "heldout")
    if not samples:
        print(f"bench_confidence: error: no AFLW2000-3D images in {args.data}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    reg0 = LandmarkRegressor.from_pretrained(args.weights[0])
    size, crop_scale = reg0.net.config.size, reg0.net.config.crop_scale
    held = AFLWCrops(samples, size, crop_scale, AugConfig(0.15, 0.2, 0.0, 0.5, False))
    rng = np.random.default_rng(args.seed)
    faces = np.concatenate([held.unaugmented()[0], held.batch(rng, len(held), balanced=False)["image"]])
    windows = negative_batch(held, rng, args.negatives, NegativeConfig(colour=False))
    proposal = ProposalConfig()
    photo_crops, photo_of = [], []
    for k, (_, im) in enumerate(no_face_images()):
        for side in window_sides(im.shape, proposal):
            c, _ = window_crops(im, side, proposal, size, crop_scale)
            photo_crops.append(c)
            photo_of += [k] * len(c)
    photo_crops, photo_of = np.concatenate(photo_crops), np.asarray(photo_of)
    print(
        f"{len(faces)} face crops, {len(windows)} held-out windows, {len(photo_crops)} windows of "
        f"{photo_of.max() + 1} face-free photos ({time.perf_counter() - t0:.0f} s)"
    )
    results = {}
    for w in args.weights:
        reg = reg0 if w == args.weights[0] else LandmarkRegressor.from_pretrained(w)
        f = coarse_logits(reg, faces, 256)
        n = coarse_logits(reg, windows, 256)
        p = coarse_logits(reg, photo_crops, 256)
        best = np.array([p[photo_of == k].max() for k in range(photo_of.max() + 1)])
        t = (0.2, 0.5, 0.9, 0.99)  # 0.2: the pipeline's regressor_min_confidence; 0.9: the fallback's
        results[str(w or "assets/regressor")] = {
            "heldout_windows": confidence_report(f, n, t),
            "face_free_photo_windows": confidence_report(f, p, t),
            "face_free_photos_best_window": confidence_report(f, best, t),
        }
    summary = {"command": " ".join(sys.argv), "data": str(args.data), "results": results}
    atomic_write_json(Path(args.out), summary)
    for w, r in results.items():
        print(w)
        for k, v in r.items():
            keep = ("auroc", "faces_at_least_0.2", "faces_at_least_0.9", "negatives_at_least_0.9")
            print(f"  {k:30s} " + "  ".join(f"{q} {v[q]:.3f}" for q in keep))
    print(json.dumps({"out": args.out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
