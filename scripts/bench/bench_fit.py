"""AFLW2000-3D benchmark of the fitter: NME per |yaw| bin, protocol and automatic mode.

    .venv/bin/python scripts/bench/bench_fit.py --data ../shared/data/aflw2000-3d-dev --out out/bench_fit.json

Per image it records dlib's raw 68 points and the fitted model's anatomical landmarks (with and
without silhouette handling), so the JSON compares them on the same faces. Results stream into
``<out>.jsonl``; ``--resume`` continues a killed run. ``--split heldout`` keeps the half of the dev
set the shipped regressor was not fine-tuned on. In automatic mode every face is detected and the
one whose box overlaps the ground-truth box most (IoU >= ``MIN_IOU``) is scored; an image without
such a detection counts as missed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from face3d.argtypes import float_in
from face3d.detect import FaceDetector
from face3d.detect.boxes import best_match, iou
from face3d.eval.aflw import SPLITS, load_aflw, select_split, stratified
from face3d.eval.metrics import bin_table, nme
from face3d.fit import FitConfig
from face3d.fit.pipeline import (
    LandmarkConfig,
    blend_landmarks,
    choose_landmark_source,
    default_regressor,
    detect_and_landmark,
    fit_detections,
)
from face3d.io import atomic_write_json, read_image, resume_jsonl
from face3d.model import MorphableModel
from face3d.regress.infer import default_tta, landmark_box_from_detector_box

DEFAULT_LANDMARKS = LandmarkConfig()  # the default pipeline's switch and blend

MIN_IOU = 0.2
"""Automatic mode: the detection whose box (mapped to a landmark box) overlaps the ground-truth
68-point box most is the labelled face; below this IoU the face counts as missed."""

PIPELINES = ("dlib_fit", "dlib_fit_no_silhouette", "regressor", "regressor_fit", "default")


def run_one(
    sample,
    mode,
    model,
    detector,
    regressor,
    photometric: bool = False,
    recrop: int = DEFAULT_LANDMARKS.regressor_recrop,
    recrop_scale: float = DEFAULT_LANDMARKS.regressor_recrop_scale,
) -> dict:
    """NME of every pipeline on one image (the 2D work is shared, each fit timed on its own);
    with ``photometric`` also ``default_photometric``: the default pipeline's fit refined by
    :func:`face3d.fit.photometric.refine_face` (its time includes the landmark fit's)."""
    image = read_image(sample.image_path)
    rec = {"image": sample.image_path.name, "yaw": sample.yaw, "mode": mode}
    box = sample.box if mode == "protocol" else None
    # dlib's points for the dlib columns; the default pipeline's choice is re-made below
    lcfg = LandmarkConfig(
        regressor_min_yaw=1e9,
        given_box_min_yaw=1e9,
        blend=0.0,
        regressor_recrop=recrop,
        regressor_recrop_scale=recrop_scale,
    )
    marked = detect_and_landmark(image, detector, None, box, regressor, lcfg)
    rec["detect_ms"], rec["landmarks_ms"], rec["regress_ms"] = (
        marked.detect_ms,
        marked.landmarks_ms,
        marked.regress_ms,
    )
    if box is None:  # automatic mode: score the detection of the labelled face, not the largest one
        rec["faces"] = len(marked.detections)
        boxes = [landmark_box_from_detector_box(d.box) for d in marked.detections]
        match = best_match(boxes, sample.box, MIN_IOU)
        if match is None:
            return rec  # missed: no detection, or none of the labelled face
        rec["match_iou"] = iou(boxes[match], sample.box)
        marked = marked.select(match)
    if not marked.detections:
        return rec
    if marked.sources[0] != "dlib":  # a face the upright search turned: the dlib columns keep dlib's points
        from face3d.detect import predict_landmarks

        lm = predict_landmarks(image, marked.detections[0].box)
        marked = replace(marked, landmarks=(lm,), sources=("dlib",))
    rec["dlib"] = nme(marked.landmarks[0], sample.landmarks)

    faces = {}

    def run(name, m, cfg=FitConfig(), fast=False):
        t0 = time.perf_counter()
        face = fit_detections(model, m, cfg, fast=fast)[0]
        rec[f"{name}_ms"] = (time.perf_counter() - t0) * 1e3
        rec[name] = nme(face.fit.landmarks_fitted[0].numpy(), sample.landmarks)
        faces[name] = face

    run("dlib_fit", marked)
    run("dlib_fit_no_silhouette", marked, FitConfig(silhouette=False))
    reg = marked.regressions[0] if marked.regressions else None
    if reg is not None:
        reg_marked = replace(marked, landmarks=(reg.landmarks,), sources=("regressor",))
        run("regressor", reg_marked, fast=True)
        run("regressor_fit", reg_marked)
        rec["regressor_yaw"], rec["regressor_turns"] = reg.yaw, reg.turns
        source = choose_landmark_source(reg, DEFAULT_LANDMARKS, given_box=box is not None)
        if source == "blend":  # dlib's points blended with the network's
            weights = DEFAULT_LANDMARKS.blend, DEFAULT_LANDMARKS.blend_inner_lips
            lm = blend_landmarks(marked.landmarks[0], reg.landmarks, *weights)
            run("blend_fit", replace(marked, landmarks=(lm,), sources=("blend",)))
        base = f"{source}_fit"
        rec["default"], rec["default_source"] = rec[base], base
        rec["default_ms"] = rec[f"{base}_ms"] + rec["regress_ms"]
    else:
        rec["default"], rec["default_ms"] = rec["dlib_fit"], rec["dlib_fit_ms"]
    if photometric:
        from face3d.fit.photometric import refine_face

        base = rec.get("default_source", "dlib_fit")
        t0 = time.perf_counter()
        face = refine_face(model, image, faces[base])
        rec["default_photometric_ms"] = rec["default_ms"] + (time.perf_counter() - t0) * 1e3
        rec["default_photometric"] = nme(face.fit.landmarks_fitted[0].numpy(), sample.landmarks)
    return rec


def summarise(records: list[dict]) -> dict:
    out = {}
    for mode in ("protocol", "auto"):
        recs = [r for r in records if r["mode"] == mode]
        if not recs:
            continue
        res = {"images": len(recs)}
        names = [
            *PIPELINES,
            *(["default_photometric"] if any("default_photometric" in r for r in recs) else []),
        ]
        for name in ["dlib", *names]:
            res[name] = bin_table([(r["yaw"], r.get(name)) for r in recs])
        for key in ["detect_ms", "landmarks_ms", "regress_ms", *[f"{p}_ms" for p in names]]:
            vals = [r[key] for r in recs if key in r]
            if vals:
                res[f"median_{key}"] = round(float(np.median(vals)), 2)
        out[mode] = res
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--out", default="out/bench_fit.json")
    ap.add_argument("--modes", default="protocol,auto", help="comma list of protocol, auto")
    ap.add_argument("--per-bin", type=int, default=None, help="at most N images per yaw bin (default all)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-regressor", action="store_true", help="dlib pipelines only")
    ap.add_argument("--regressor", default=None, help="regressor weights folder (default assets/regressor)")
    ap.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="half of the dev set (face3d.eval.aflw.split_aflw); the shipped regressor was "
        "fine-tuned on 'train', so measure it on 'heldout'",
    )
    ap.add_argument(
        "--photometric", action="store_true", help="also the default fit + photometric refinement"
    )
    ap.add_argument(
        "--recrop",
        type=int,
        default=DEFAULT_LANDMARKS.regressor_recrop,
        help="regressor re-crops on its own landmarks from detector boxes (LandmarkConfig.regressor_recrop)",
    )
    ap.add_argument(
        "--recrop-scale",
        type=float_in(0, open_low=True),
        default=DEFAULT_LANDMARKS.regressor_recrop_scale,
        help="growth of each re-crop box (LandmarkConfig.regressor_recrop_scale)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    samples = stratified(select_split(load_aflw(args.data), args.split), args.per_bin)
    if not samples:
        print(f"no AFLW2000-3D images in {args.data}", file=sys.stderr)
        return 2
    model = MorphableModel.from_dir()
    detector = FaceDetector()
    if args.no_regressor:
        regressor = None
    elif args.regressor is not None:
        regressor = default_tta(args.regressor)
    else:
        regressor = default_regressor()
    out = Path(args.out)
    stream = out.with_suffix(".jsonl")
    records = resume_jsonl(stream, args.resume)
    done = {(r["image"], r["mode"]) for r in records}
    todo = [(s, m) for m in args.modes.split(",") for s in samples if (s.image_path.name, m) not in done]
    with open(stream, "a") as fh:
        for sample, mode in tqdm(todo, desc="bench_fit", unit="img"):
            rec = run_one(
                sample, mode, model, detector, regressor, args.photometric, args.recrop, args.recrop_scale
            )
            records.append(rec)
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
    summary = {
        "data": str(args.data),
        "per_bin": args.per_bin,
        "split": args.split,
        "recrop": args.recrop,
        "recrop_scale": args.recrop_scale,
        "command": " ".join(sys.argv),
        "results": summarise(records),
    }
    atomic_write_json(out, summary)
    print(json.dumps(summary["results"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
