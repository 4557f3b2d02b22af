"""How much of the regressor's landmarks to blend into dlib's near frontal (``LandmarkConfig.blend``).

    .venv/bin/python scripts/experiments/landmark_blend.py --split train --out out/landmark_blend_train.json

Automatic mode (our own detection, as ``face3d fit``): for every AFLW2000-3D image of the split
whose face the default pipeline would give dlib's landmarks (the regressor's |yaw| below
``regressor_min_yaw``, not turned), the NME (%) per |yaw| bin of the raw 68 points blended as
``(1 - w) dlib + w regressor`` for each ``--weights`` w (0: dlib's alone, 1: the network's), and
of the 3D fit on the ``--fit-weight`` blend fitted both ways: as dlib's points (silhouette
re-selection, no landmark convention) and as the pipeline fits a blend (the network's convention,
no silhouette), both with ``--jaw-weight``.
Choose on ``--split train`` (the network was fine-tuned on it, which favours larger w), report
on ``heldout``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import torch
from tqdm import tqdm

from face3d.argtypes import float_in, float_list
from face3d.eval.aflw import SPLITS, select_split


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--split", default="train", choices=SPLITS)
    ap.add_argument("--per-bin", type=int, default=None, help="at most N images per yaw bin (default all)")
    ap.add_argument(
        "--weights", type=float_list(0, 1), default="0,0.3,0.5,0.7,1", help="comma list of blend weights w"
    )
    ap.add_argument("--fit-weight", type=float_in(0, 1), default=0.5, help="the blend fitted both ways")
    ap.add_argument(
        "--jaw-weight",
        type=float_in(0),
        default=None,
        help="FitConfig.jaw_weight of the blend's fits (default FitConfig's)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="out/landmark_blend.json")
    args = ap.parse_args(argv)
    weights, fit_weight = args.weights, args.fit_weight

    from face3d.detect import FaceDetector
    from face3d.detect.boxes import best_match
    from face3d.eval.aflw import load_aflw, stratified
    from face3d.eval.metrics import bin_table, nme
    from face3d.fit import FitConfig
    from face3d.fit.pipeline import (
        LandmarkConfig,
        blend_landmarks,
        default_regressor,
        detect_and_landmark,
        fit_detections,
    )
    from face3d.io import atomic_write_json, read_image
    from face3d.model import MorphableModel
    from face3d.regress.infer import landmark_box_from_detector_box

    samples = stratified(select_split(load_aflw(args.data), args.split), args.per_bin)
    regressor = default_regressor()
    if not samples or regressor is None:
        print("landmark_blend: needs the AFLW2000-3D dev set and the shipped regressor", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    model, detector = MorphableModel.from_dir(), FaceDetector()
    dlib_only = LandmarkConfig(blend=0.0)
    fit_cfg = FitConfig() if args.jaw_weight is None else FitConfig(jaw_weight=args.jaw_weight)
    raw: dict[float, list] = {w: [] for w in weights}
    fitted: dict[str, list] = {"as_dlib": [], "as_regressor": []}
    for s in tqdm(samples, desc="landmark_blend"):
        image = read_image(s.image_path)
        marked = detect_and_landmark(image, detector, None, None, regressor, dlib_only)
        match = best_match([landmark_box_from_detector_box(d.box) for d in marked.detections], s.box)
        if match is None or marked.sources[match] != "dlib":
            continue  # the labelled face not found, or one the pipeline gives the network's points
        marked = marked.select(match)
        dlib_points, reg = marked.landmarks[0], marked.regressions[0]
        for w in weights:
            raw[w].append((s.yaw, nme(blend_landmarks(dlib_points, reg.landmarks, w), s.landmarks)))
        blend = blend_landmarks(dlib_points, reg.landmarks, fit_weight)
        for name, source in (("as_dlib", "dlib"), ("as_regressor", "blend")):
            face = fit_detections(model, replace(marked, landmarks=(blend,), sources=(source,)), fit_cfg)[0]
            fitted[name].append((s.yaw, nme(face.fit.landmarks_fitted[0].numpy(), s.landmarks)))
    out = {
        "split": args.split,
        "images": len(samples),
        "faces": len(raw[weights[0]]),
        "raw": {f"{w:g}": bin_table(v) for w, v in raw.items()},
        "fit_weight": fit_weight,
        "jaw_weight": fit_cfg.jaw_weight,
        "fitted": {k: bin_table(v) for k, v in fitted.items()},
    }
    for w in weights:
        print(f"raw w={w:g}: " + "  ".join(f"{b} {c['nme']:.2f}" for b, c in _bins(out["raw"][f"{w:g}"])))
    for k in fitted:
        print(
            f"fit {k} (w={fit_weight:g}): "
            + "  ".join(f"{b} {c['nme']:.2f}" for b, c in _bins(out["fitted"][k]))
        )
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


def _bins(table: dict):
    return [(b, c) for b, c in table.items() if isinstance(c, dict) and c.get("n")]


if __name__ == "__main__":
    sys.exit(main())
