"""Speed of the regressor's inference path against its reference, measured in the same run.

    .venv/bin/python scripts/bench/bench_regressor_speed.py --data ../shared/data/aflw2000-3d-dev \\
        --images 100 --out out/bench_regressor_speed.json

For each test-time augmentation setting (one crop; mirrored crop; mirrored crop at three crop
scales; the same with the profile views for faces at |yaw| >= 30, the default pipeline's) and
each thread count, every image is predicted by
:class:`LandmarkRegressor` (BatchNorm folded, compiled trunk, region-of-interest shrink), by the
same with the folded trunk run eagerly (``compile=False``) and by
:class:`ReferenceLandmarkRegressor` (the network as trained, whole-image shrink), in turn, so all
see the same machine load; then the fast path alone, image after image (``fast_alone_ms``: what a
folder run sees, without the other two evicting its caches). Writes median ms per face for each,
the ratios to the fast path (median of the per-image ratios) and the largest landmark difference
between the fast path and the reference (% of the face box), and the fast path's median per
ground-truth |yaw| bin (the profile views cost only at large yaw).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

SETTINGS = {
    "single": (False, (1.0,), False),
    "flip": (True, (1.0,), False),
    "flip_tta": (True, (0.9, 1.0, 1.1), False),
    "flip_tta_profile": (True, (0.9, 1.0, 1.1), True),  # the default (face3d.regress.infer.default_tta)
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev", help="AFLW2000-3D dev folder")
    ap.add_argument("--images", type=int, default=100, help="images timed (the first N, GT boxes)")
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    ap.add_argument("--repeats", type=int, default=3, help="timed predictions per image (the median is kept)")
    ap.add_argument("--weights", default=None, help="regressor folder (default assets/regressor)")
    ap.add_argument("--out", default="out/bench_regressor_speed.json")
    args = ap.parse_args(argv)

    import torch
    from tqdm import tqdm

    from face3d.eval.aflw import load_aflw
    from face3d.eval.metrics import BIN_NAMES, yaw_bin
    from face3d.io import atomic_write_json, read_image
    from face3d.regress.infer import LandmarkRegressor, ReferenceLandmarkRegressor
    from face3d.regress.network import RegressorNet
    from face3d.regress.views import PROFILE_VIEWS

    samples = load_aflw(args.data)[: args.images]
    if not samples:
        print(f"bench_regressor_speed: no AFLW2000-3D images in {args.data}", file=sys.stderr)
        return 2
    net = RegressorNet.from_pretrained(args.weights)
    images = [read_image(s.image_path) for s in samples]
    bins = np.array([yaw_bin(s.yaw) for s in samples])

    def timed(reg, image, box) -> tuple[float, np.ndarray]:
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = reg.predict(image, box)
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts)) * 1e3, out.landmarks

    results = {}
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)  # the thread count is what this benchmark varies
        for name, (flip, scales, profile) in SETTINGS.items():
            opts = {"flip": flip, "scales": scales}
            opts["profile_views"] = PROFILE_VIEWS if profile else ()
            fast = LandmarkRegressor(net, **opts)
            eager = LandmarkRegressor(net, **opts, compile=False)
            ref = ReferenceLandmarkRegressor(net, **opts)
            for reg in (fast, eager, ref):  # warm-up (and the folded, compiled copy)
                timed(reg, images[0], samples[0].box)
            t_fast, t_eager, t_ref, diff = [], [], [], []
            for s, image in tqdm(
                list(zip(samples, images, strict=True)), desc=f"{name} x{threads}", leave=False
            ):
                (tf, lf), (tr, lr) = timed(fast, image, s.box), timed(ref, image, s.box)
                t_eager.append(timed(eager, image, s.box)[0])
                t_fast.append(tf)
                t_ref.append(tr)
                size = np.sqrt(np.prod(s.landmarks.max(0) - s.landmarks.min(0)))
                diff.append(float(np.linalg.norm(lf - lr, axis=1).max() / size * 100))
            # the fast path alone, image after image: the interleaved timings above share the caches
            # with the reference and the eager trunk (a 1 MB L2 here), this is a folder run's steady state
            t_alone = [timed(fast, image, s.box)[0] for s, image in zip(samples, images, strict=True)]
            key = f"{name}_threads{threads}"
            results[key] = {
                "crops": len(scales) * (2 if flip else 1),
                "profile_crops": len(opts["profile_views"]) * (2 if flip else 1),
                "fast_ms": round(float(np.median(t_fast)), 2),
                "fast_alone_ms": round(float(np.median(t_alone)), 2),
                "reference_ms": round(float(np.median(t_ref)), 2),
                "ratio": round(float(np.median(np.array(t_ref) / np.array(t_fast))), 3),
                "eager_trunk_ms": round(float(np.median(t_eager)), 2),
                "eager_ratio": round(float(np.median(np.array(t_eager) / np.array(t_fast))), 3),
                "max_landmark_diff_pct": round(float(np.max(diff)), 4),
                "fast_ms_per_bin": {
                    bin_name: round(float(np.median(np.array(t_fast)[bins == i])), 2)
                    for i, bin_name in enumerate(BIN_NAMES)
                    if np.any(bins == i)
                },
            }
            r = results[key]
            print(
                f"{key:>20}: {r['fast_ms']:.2f} ms, alone {r['fast_alone_ms']:.2f} ms "
                f"(reference {r['reference_ms']:.2f} ms, x{r['ratio']:.2f}; "
                f"eager trunk {r['eager_trunk_ms']:.2f} ms, x{r['eager_ratio']:.2f}); "
                f"landmarks differ by <= {r['max_landmark_diff_pct']:.3f} % of the box",
            )
    atomic_write_json(
        args.out,
        {"images": len(samples), "repeats": args.repeats, "data": str(args.data), "results": results},
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
