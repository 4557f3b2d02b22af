"""AFLW2000-3D benchmark of the landmark/3DMM regressor against dlib, protocol mode (GT 68-point box).

    .venv/bin/python scripts/bench/bench_regressor.py --data ../shared/data/aflw2000-3d-dev --per-bin 60 \
        --out out/bench_regressor.json

Per image: (a) ``regressor``: the regressor's 68 landmarks; (b) ``regressor_fit``: the LM fitter
(``FitConfig().for_source("regressor")``, as ``face3d fit`` fits them) on those landmarks;
``dlib``: dlib's shape predictor in the mapped landmark box; ``dlib_fit``: the default fitter on
dlib's points; ``hybrid``/``hybrid_fit``: dlib when the regressor's |yaw| < 30, the regressor
otherwise. NME per |yaw| bin (% of sqrt(w h) of the GT box) and median ms per face. Results
stream into ``<out>.jsonl``; ``--resume`` continues a killed run.

``--split train|heldout`` keeps one half of the dev images (:func:`face3d.eval.aflw.split_aflw`,
the split the AFLW fine-tune uses; evaluate fine-tuned weights on ``heldout`` only);
``--regressor-only`` skips dlib and the fits (methods ``regressor`` alone).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from face3d.detect import dlib_box_from_landmark_box, predict_landmarks
from face3d.eval.aflw import SPLITS, load_aflw, select_split, stratified
from face3d.eval.metrics import BIN_NAMES, bin_table, nme, yaw_bin
from face3d.fit import FitConfig
from face3d.fit.landmark_fit import fit_landmarks
from face3d.io import atomic_write_json, read_image, resume_jsonl
from face3d.model import MorphableModel
from face3d.regress.infer import LandmarkRegressor
from face3d.regress.views import PROFILE_VIEWS

METHODS = ("regressor", "regressor_fit", "dlib", "dlib_fit", "hybrid", "hybrid_fit")
HYBRID_YAW = 30.0  # hybrid: dlib's points when the regressor's |yaw| is below this, else the regressor's


def run_one(sample, model, regressor, regressor_only: bool = False) -> dict:
    image = read_image(sample.image_path)
    H, W = image.shape[:2]
    rec = {"image": sample.image_path.name, "yaw": sample.yaw}
    t0 = time.perf_counter()
    out = regressor.predict(image, sample.box)
    t1 = time.perf_counter()
    rec["regressor"], rec["regressor_ms"] = nme(out.landmarks, sample.landmarks), (t1 - t0) * 1e3
    rec["regressor_yaw"], rec["regressor_confidence"] = out.yaw, out.confidence
    rec["regressor_turns"] = out.turns
    if regressor_only:
        return rec
    tg = torch.as_tensor(out.landmarks[None], dtype=torch.float64)
    offset = torch.as_tensor(out.landmark_offset)
    fit = fit_landmarks(model, tg, (H, W), FitConfig().for_source("regressor"), landmark_offset=offset)
    t2 = time.perf_counter()
    rec["regressor_fit"] = nme(fit.landmarks_fitted[0].numpy(), sample.landmarks)
    rec["regressor_fit_ms"] = (t2 - t1) * 1e3
    lm = predict_landmarks(image, dlib_box_from_landmark_box(sample.box))
    t3 = time.perf_counter()
    rec["dlib"], rec["dlib_ms"] = nme(lm, sample.landmarks), (t3 - t2) * 1e3
    fit = fit_landmarks(model, torch.as_tensor(lm[None]), (H, W), FitConfig())
    rec["dlib_fit"] = nme(fit.landmarks_fitted[0].numpy(), sample.landmarks)
    rec["dlib_fit_ms"] = (time.perf_counter() - t3) * 1e3
    return rec


def add_hybrid(rec: dict) -> dict:
    """The integration recommended for ``face3d fit``: dlib near frontal, the regressor beyond."""
    src = "dlib" if abs(rec["regressor_yaw"]) < HYBRID_YAW else "regressor"
    rec["hybrid"], rec["hybrid_fit"] = rec[src], rec[f"{src}_fit"]
    rec["hybrid_ms"] = rec["regressor_ms"] + (rec["dlib_ms"] if src == "dlib" else 0.0)
    rec["hybrid_fit_ms"] = rec["hybrid_ms"] + rec[f"{src}_fit_ms"] - rec[f"{src}_ms"]
    return rec


def summarise(records: list[dict]) -> dict:
    full = all("dlib" in r for r in records)
    records = [add_hybrid(dict(r)) if full else dict(r) for r in records]
    res = {"images": len(records), "hybrid_yaw_threshold": HYBRID_YAW}
    for name in METHODS if full else ("regressor",):
        res[name] = bin_table([(r["yaw"], r.get(name)) for r in records])
        res[f"median_{name}_ms"] = round(float(np.median([r[f"{name}_ms"] for r in records])), 2)
    # AFLW2000-3D's Pose_Para yaw has the opposite sign of face3d's (nose toward image right > 0)
    yaw_err = [abs(r["regressor_yaw"] + r["yaw"]) for r in records]
    res["regressor_median_abs_yaw_error_deg"] = round(float(np.median(yaw_err)), 2)
    # per |yaw| bin: median |yaw error| and median (|predicted yaw| - |true yaw|) (< 0: underestimated)
    for key, fn in (
        ("regressor_median_abs_yaw_error_deg_per_bin", lambda r: abs(r["regressor_yaw"] + r["yaw"])),
        ("regressor_median_abs_yaw_bias_deg_per_bin", lambda r: abs(r["regressor_yaw"]) - abs(r["yaw"])),
    ):
        res[key] = {
            name: round(float(np.median([fn(r) for r in records if yaw_bin(r["yaw"]) == b])), 2)
            for b, name in enumerate(BIN_NAMES)
            if any(yaw_bin(r["yaw"]) == b for r in records)
        }
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--out", default="out/bench_regressor.json")
    ap.add_argument("--weights", default=None, help="regressor folder (default assets/regressor)")
    ap.add_argument("--per-bin", type=int, default=None, help="at most N images per yaw bin (default all)")
    ap.add_argument("--flip", action="store_true", help="mirrored-crop test-time augmentation")
    ap.add_argument(
        "--scales", default="1.0", help="comma list of crop scales averaged (test-time augmentation)"
    )
    ap.add_argument(
        "--profile-views",
        action="store_true",
        help="also the profile views for faces at |yaw| >= 30 (face3d.regress.views.PROFILE_VIEWS)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument(
        "--split", choices=SPLITS, default="all", help="half of the dev set (face3d.eval.aflw.split_aflw)"
    )
    ap.add_argument("--regressor-only", action="store_true", help="skip dlib and the 3D fits")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    samples = stratified(select_split(load_aflw(args.data), args.split), args.per_bin)
    if not samples:
        print(f"no AFLW2000-3D images in {args.data}", file=sys.stderr)
        return 2
    model = None if args.regressor_only else MorphableModel.from_dir()
    try:
        scales = tuple(float(v) for v in args.scales.split(","))
        views = PROFILE_VIEWS if args.profile_views else ()
        regressor = LandmarkRegressor.from_pretrained(
            args.weights, flip=args.flip, scales=scales, profile_views=views
        )
    except ValueError as err:
        print(f"bench_regressor: --scales {args.scales!r}: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    stream = out.with_suffix(".jsonl")
    records = resume_jsonl(stream, args.resume)
    done = {r["image"] for r in records}
    todo = [s for s in samples if s.image_path.name not in done]
    with open(stream, "a") as fh:
        for sample in tqdm(todo, desc="bench_regressor", unit="img"):
            rec = run_one(sample, model, regressor, args.regressor_only)
            records.append(rec)
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
    summary = {
        "data": str(args.data),
        "per_bin": args.per_bin,
        "weights": str(args.weights or "assets/regressor"),
        "flip": args.flip,
        "scales": list(regressor.scales),
        "profile_views": args.profile_views,
        "split": args.split,
        "regressor_only": args.regressor_only,
        "command": " ".join(sys.argv),
        "results": {"protocol": summarise(records)},
    }
    atomic_write_json(out, summary)
    print(json.dumps(summary["results"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
