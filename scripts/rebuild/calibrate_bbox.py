#!/usr/bin/env python
"""Fit the landmark-box -> dlib-HOG-box mapping on AFLW2000-3D and measure dlib's landmarks.

    .venv/bin/python scripts/rebuild/calibrate_bbox.py --data ../shared/data/aflw2000-3d-dev \\
        --out assets/bbox_mapping.json [--every 1] [--cnn-per-bin 0]

For every image: run dlib's HOG detector (``DetectConfig`` defaults, no CNN fallback); when a box
matches the ground-truth face (IoU with the bounding box of the 68 GT points > ``--min-iou``),
it is a training pair. ``dcx`` (the HOG box centre x minus the GT box centre x) and ``w`` (the HOG
box width) are fitted as ``c * w_gt``, ``dcy`` and ``h`` as ``c * h_gt`` (mean ratio, pairs over
4 robust sigmas away dropped); the JSON stores ``(c_w, c_h)`` pairs, the cross terms being 0.

Then, on every image, dlib's 68-point predictor runs in protocol mode (the GT box given) with the
raw GT box and with the mapped box, and in detector mode on the matched HOG box. NME = mean point
error / sqrt(w * h) of the GT box, in %, per |yaw| bin [0, 30), [30, 60), [60, 90+]. The mapped
numbers are also given 2-fold cross-validated (fit on even images, test on odd, and back).
Optionally (``--cnn-per-bin N``) the CNN detector runs on N images per bin for its detection rate.

Writes the JSON read by ``face3d.detect.dlib_box_from_landmark_box``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from face3d.eval.metrics import BIN_NAMES as BINS
from face3d.eval.metrics import nme, yaw_bin


def load_sample(jpg: Path):
    """(image (H, W, 3) uint8 RGB, GT points (68, 2) 0-based, yaw radians)."""
    import scipy.io

    from face3d.io import read_image

    mat = scipy.io.loadmat(str(jpg.with_suffix(".mat")))
    pts = np.asarray(mat["pt3d_68"], dtype=np.float64)[:2].T - 1.0  # 1-based MATLAB -> 0-based
    return read_image(jpg), pts, float(mat["Pose_Para"][0, 1])


def targets(gt_boxes: np.ndarray, det_boxes: np.ndarray) -> dict[str, np.ndarray]:
    gc = 0.5 * (gt_boxes[:, :2] + gt_boxes[:, 2:])
    dc = 0.5 * (det_boxes[:, :2] + det_boxes[:, 2:])
    return {
        "dcx": dc[:, 0] - gc[:, 0],
        "dcy": dc[:, 1] - gc[:, 1],
        "w": det_boxes[:, 2] - det_boxes[:, 0],
        "h": det_boxes[:, 3] - det_boxes[:, 1],
    }


# each output is proportional to one side of the GT box: centre x shift and width to w, the rest to h
FEATURE = {"dcx": 0, "dcy": 1, "w": 0, "h": 1}


def fit_mapping(gt_boxes: np.ndarray, det_boxes: np.ndarray) -> tuple[dict, dict]:
    """Per-coordinate fit (then 4-sigma trimmed); returns coefficients and residual stats.

    Each output ``y`` = ``c * side`` with ``side`` the GT box's width or height (:data:`FEATURE`);
    ``c`` minimises the squared relative error, i.e. it is the mean of ``y / side``. The cross
    terms stay 0: on the matched faces the GT box's aspect only spans 0.86-1.19, so a fit on
    both ``w`` and ``h`` is ill-conditioned (its coefficients swing between subsets) and no better.
    """
    sides = np.stack([gt_boxes[:, 2] - gt_boxes[:, 0], gt_boxes[:, 3] - gt_boxes[:, 1]], axis=1)
    coeffs, stats = {}, {}
    for key, y in targets(gt_boxes, det_boxes).items():
        ratio = y / sides[:, FEATURE[key]]
        sigma = 1.4826 * np.median(np.abs(ratio - np.median(ratio)))
        keep = np.abs(ratio - np.median(ratio)) <= 4 * max(sigma, 1e-6)
        c = float(ratio[keep].mean())
        pair = [0.0, 0.0]
        pair[FEATURE[key]] = round(c, 5)
        coeffs[key] = pair
        stats[key] = {
            "rms_residual_rel": round(float(np.sqrt(np.mean((ratio[keep] - c) ** 2))), 4),
            "n_trimmed": int((~keep).sum()),
        }
    return coeffs, stats


def per_bin(values: list[float], bins: list[int], fmt=lambda v: round(float(v), 2)) -> dict:
    arr, b = np.asarray(values, dtype=np.float64), np.asarray(bins)
    out = {name: (fmt(arr[b == i].mean()) if np.any(b == i) else None) for i, name in enumerate(BINS)}
    vals = [v for v in out.values() if v is not None]
    out["balanced"] = fmt(np.mean(vals)) if vals else None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder of AFLW2000-3D .jpg + .mat")
    ap.add_argument("--out", type=Path, required=True, help="JSON to write (assets/bbox_mapping.json)")
    ap.add_argument("--every", type=int, default=1, help="use every k-th image (sorted by name)")
    ap.add_argument("--min-iou", type=float, default=0.3, help="HOG box vs GT box IoU for a match")
    ap.add_argument("--cnn-per-bin", type=int, default=0, help="CNN detection rate on N images per bin")
    args = ap.parse_args(argv)

    from face3d.detect import DetectConfig, FaceDetector, apply_mapping, iou, landmark_box, predict_landmarks
    from face3d.io import atomic_write_json

    files = sorted(args.data.glob("*.jpg"))[:: max(1, args.every)]
    if not files:
        print(f"no .jpg in {args.data}", file=sys.stderr)
        return 2
    config = DetectConfig(use_cnn=False)
    detector = FaceDetector(config)
    detector.detect_hog(np.zeros((64, 64, 3), np.uint8))  # load the models before timing
    predict_landmarks(np.zeros((64, 64, 3), np.uint8), (10, 10, 50, 50))

    rows, hog_ms, pred_ms = [], [], []
    for i, jpg in enumerate(files):
        image, gt, yaw = load_sample(jpg)
        gt_box = landmark_box(gt)
        t0 = time.perf_counter()
        found = detector.detect_hog(image)
        hog_ms.append(1000 * (time.perf_counter() - t0))
        ious = [iou(gt_box, d.box) for d in found]
        best = int(np.argmax(ious)) if found else -1
        match = found[best].box if found and ious[best] > args.min_iou else None
        t0 = time.perf_counter()
        raw = predict_landmarks(image, gt_box)
        pred_ms.append(1000 * (time.perf_counter() - t0))
        own = predict_landmarks(image, match) if match is not None else None
        false = sum(v <= 0.1 for v in ious)
        rows.append(
            dict(jpg=jpg, gt=gt, bin=yaw_bin(np.degrees(yaw)), gt_box=gt_box, hog=match, raw=raw, own=own)
            | {"false": false}
        )
        if (i + 1) % 100 == 0:
            print(f"{i + 1}/{len(files)} images", file=sys.stderr, flush=True)

    def fit_on(idx: list[int]) -> dict:
        idx = [i for i in idx if rows[i]["hog"] is not None]
        gtb = np.array([rows[i]["gt_box"] for i in idx])
        return fit_mapping(gtb, np.array([rows[i]["hog"] for i in idx]))

    all_idx = list(range(len(rows)))
    coeffs, stats = fit_on(all_idx)
    folds = [fit_on(all_idx[k::2])[0] for k in (1, 0)]  # fold k is evaluated with the other's fit
    bins = [r["bin"] for r in rows]
    nme_raw, nme_mapped, nme_cv = [], [], []
    for i, r in enumerate(rows):
        nme_raw.append(nme(r["raw"], r["gt"]))
        image = load_sample(r["jpg"])[0]
        pred = predict_landmarks(image, apply_mapping(r["gt_box"], coeffs))
        nme_mapped.append(nme(pred, r["gt"]))
        pred = predict_landmarks(image, apply_mapping(r["gt_box"], folds[i % 2]))
        nme_cv.append(nme(pred, r["gt"]))
    matched = [i for i, r in enumerate(rows) if r["hog"] is not None]

    report = {
        "description": (
            "Mapping from the bounding box of 68 landmarks (0-based pixels) to the box dlib's HOG "
            "detector gives for that face: with w, h the landmark box's size, new centre = centre + "
            "(dcx, dcy), new size = (w, h) keys, each = c[0] * w + c[1] * h. Read by "
            "face3d.detect.dlib_box_from_landmark_box. NME in % of sqrt(w*h) of the GT 68-point box."
        ),
        "command": " ".join(
            ["scripts/rebuild/calibrate_bbox.py", *(shlex.quote(a) for a in (argv or sys.argv[1:]))]
        ),
        "data": str(args.data),
        "coefficients": coeffs,
        "fit": {"n_images": len(matched), "n_dataset": len(rows), "min_iou": args.min_iou, **stats},
        "detect_config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "bin_counts": {name: bins.count(i) for i, name in enumerate(BINS)},
        "hog_detection_rate_pct": per_bin([100.0 * (r["hog"] is not None) for r in rows], bins, round_1),
        "hog_false_detections": int(sum(r["false"] for r in rows)),
        "nme_protocol_raw_box": per_bin(nme_raw, bins),
        "nme_protocol_mapped_box": per_bin(nme_mapped, bins),
        "nme_protocol_mapped_box_2fold_cv": per_bin(nme_cv, bins),
        "nme_own_hog_box_on_found": per_bin(
            [nme(rows[i]["own"], rows[i]["gt"]) for i in matched], [bins[i] for i in matched]
        ),
        "ms_per_image": {
            "hog": round(float(np.mean(hog_ms)), 1),
            "predictor": round(float(np.mean(pred_ms)), 2),
        },
    }
    if args.cnn_per_bin > 0:
        report["cnn_sample"] = cnn_sample(rows, args.cnn_per_bin, args.min_iou)
    atomic_write_json(args.out, report)
    for key in ("coefficients", "hog_detection_rate_pct", "nme_protocol_raw_box", "nme_protocol_mapped_box"):
        print(key, report[key])
    print("wrote", args.out)
    return 0


def round_1(v) -> float:
    return round(float(v), 1)


def cnn_sample(rows: list[dict], per_bin: int, min_iou: float) -> dict:
    """CNN (mmod) detection rate, ms per image and predictor NME on its raw box, on a few images per bin."""
    from face3d.detect import DetectConfig, FaceDetector, iou, predict_landmarks

    detector = FaceDetector(DetectConfig())
    detector.detect_cnn(np.zeros((64, 64, 3), np.uint8))
    ms: list[float] = []
    found, hog_found, errs = ({i: [] for i in range(3)} for _ in range(3))
    picked = {i: 0 for i in range(3)}
    for r in rows:  # evenly spread: rows are sorted by name, take the first per_bin of each bin
        b = r["bin"]
        if picked[b] >= per_bin:
            continue
        picked[b] += 1
        image = load_sample(r["jpg"])[0]
        t0 = time.perf_counter()
        dets = detector.detect_cnn(image)
        ms.append(1000 * (time.perf_counter() - t0))
        ious = [iou(r["gt_box"], d.box) for d in dets]
        ok = bool(dets) and max(ious) > min_iou
        found[b].append(ok)
        hog_found[b].append(r["hog"] is not None)
        if ok:
            box = dets[int(np.argmax(ious))].box
            errs[b].append(nme(predict_landmarks(image, box), r["gt"]))
    return {
        "n_per_bin": {BINS[b]: picked[b] for b in range(3)},
        "cnn_detection_rate_pct": {BINS[b]: round_1(100 * np.mean(found[b])) for b in range(3) if found[b]},
        "hog_detection_rate_pct_same_images": {
            BINS[b]: round_1(100 * np.mean(hog_found[b])) for b in range(3) if hog_found[b]
        },
        "nme_own_cnn_box_on_found": {BINS[b]: round(float(np.mean(errs[b])), 2) for b in range(3) if errs[b]},
        "ms_per_image": round(float(np.mean(ms)), 0),
        "cnn_max_side": detector.config.cnn_max_side,
    }


if __name__ == "__main__":
    sys.exit(main())
