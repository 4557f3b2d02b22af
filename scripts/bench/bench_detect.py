"""Automatic-mode face detection: dlib (HOG, then CNN) vs the regressor fallback, per |yaw| bin,
and false detections on face-free images (skimage.data).

    .venv/bin/python scripts/bench/bench_detect.py --data ../shared/data/aflw2000-3d-dev --n 300 \\
        --out out/bench_detect.json

AFLW2000-3D images are subsampled evenly (``--n`` of the sorted list). A detection is correct when
its box overlaps the ground-truth 68-point box by IoU > 0.3 or its centre lies inside it; the
largest dlib box / the best fallback box is judged. The fallback runs on every image HOG misses,
so both "HOG + CNN + fallback" (the pipeline) and "HOG + fallback" (no CNN) are reported.
Results stream into ``<out>.jsonl``; ``--resume`` continues a killed run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from face3d.detect.boxes import iou
from face3d.eval.face_free import no_face_images


def correct(box, gt) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return iou(box, gt) > 0.3 or (gt[0] <= cx <= gt[2] and gt[1] <= cy <= gt[3])


def run_one(image, detector, regressor, config, gt=None) -> dict:
    """Boxes and times of HOG, CNN (when HOG finds none) and the fallback (when HOG finds none)."""
    from face3d.regress.proposals import propose_faces

    rec: dict = {}
    t0 = time.perf_counter()
    hog = sorted(detector.detect_hog(image), key=lambda d: -d.area)
    t1 = time.perf_counter()
    rec["hog_ms"] = (t1 - t0) * 1e3
    rec["hog"] = list(hog[0].box) if hog else None
    if not hog:
        cnn = sorted(detector.detect_cnn(image), key=lambda d: -d.area)
        t2 = time.perf_counter()
        rec["cnn_ms"], rec["cnn"] = (t2 - t1) * 1e3, list(cnn[0].box) if cnn else None
        props = propose_faces(image, regressor, config)
        rec["fallback_ms"] = (time.perf_counter() - t2) * 1e3
        rec["fallback"] = list(props[0].landmark_box) if props else None
        rec["fallback_conf"] = props[0].confidence if props else None
    if gt is not None:
        for k in ("hog", "cnn", "fallback"):
            if rec.get(k) is not None:
                rec[f"{k}_ok"] = correct(rec[k], gt)
    return rec


def _at(r: dict, threshold: float) -> dict:
    """``r`` with the fallback's box dropped when it scores below ``threshold``."""
    if r.get("fallback") is not None and r["fallback_conf"] < threshold:
        r = {**r, "fallback": None}
    return r


def detection_table(recs: list[dict], no_face: list[dict], threshold: float) -> dict:
    """Found / images per |yaw| bin, wrong boxes and false detections, per detector chain."""
    recs = [_at(r, threshold) for r in recs]
    no_face = [_at(r, threshold) for r in no_face]

    def found(r, chain):
        for k in chain:
            if r.get(k) is not None:
                return bool(r.get(f"{k}_ok", True))
        return False

    chains = {
        "hog": ("hog",),
        "dlib (hog+cnn)": ("hog", "cnn"),
        "hog+fallback": ("hog", "fallback"),
        "dlib+fallback": ("hog", "cnn", "fallback"),
    }
    out: dict = {}
    for name, chain in chains.items():
        table = {}
        for b, label in enumerate(("[0,30)", "[30,60)", "[60,90]")):
            rb = [r for r in recs if r["bin"] == b]
            table[label] = {"found": sum(found(r, chain) for r in rb), "images": len(rb)}
            table[label]["rate_%"] = round(100 * table[label]["found"] / max(1, len(rb)), 1)
        wrong = sum(any(r.get(k) is not None for k in chain) and not found(r, chain) for r in recs)
        fp = sum(any(r.get(k) is not None for k in chain) for r in no_face)
        table["wrong_box_on_aflw"] = wrong
        table["false_detections_on_no_face"] = f"{fp}/{len(no_face)}"
        out[name] = table
    return out


def summarise(recs: list[dict], no_face: list[dict], thresholds) -> dict:
    out = {f"min_confidence={t}": detection_table(recs, no_face, t) for t in thresholds}
    fb = [r["fallback_ms"] for r in recs + no_face if "fallback_ms" in r]
    cnn = [r["cnn_ms"] for r in recs + no_face if "cnn_ms" in r]
    out["median_ms"] = {
        "hog": round(float(np.median([r["hog_ms"] for r in recs])), 1),
        "cnn": round(float(np.median(cnn)), 1) if cnn else None,
        "fallback": round(float(np.median(fb)), 1) if fb else None,
    }
    out["no_face_fallback_conf"] = {r["image"]: r.get("fallback_conf") for r in no_face}
    return out


def main(argv=None) -> int:
    import torch
    from tqdm import tqdm

    from face3d.detect import FaceDetector
    from face3d.eval.aflw import SPLITS, load_aflw, select_split
    from face3d.eval.metrics import yaw_bin
    from face3d.io import atomic_write_json, read_image, resume_jsonl
    from face3d.regress.infer import LandmarkRegressor
    from face3d.regress.proposals import ProposalConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--out", default="out/bench_detect.json")
    ap.add_argument("--n", type=int, default=300, help="AFLW images, evenly subsampled (default 300)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--thresholds", default="0.9,0.99,0.999,0.9999", help="fallback min_confidence values")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--weights", default=None, help="regressor weights folder (default assets/regressor)")
    ap.add_argument(
        "--split", choices=SPLITS, default="all", help="half of the dev set (face3d.eval.aflw.split_aflw)"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    samples = select_split(load_aflw(args.data), args.split)
    if not samples:
        print(f"bench_detect: error: no AFLW2000-3D images in {args.data}", file=sys.stderr)
        return 2
    idx = np.unique(np.linspace(0, len(samples) - 1, min(args.n, len(samples))).round().astype(int))
    samples = [samples[i] for i in idx]
    detector = FaceDetector()
    regressor = LandmarkRegressor.from_pretrained(args.weights, flip=True)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    config = ProposalConfig(min_confidence=0.0)  # thresholds are applied in the summary
    out = Path(args.out)
    stream = out.with_suffix(".jsonl")
    records = resume_jsonl(stream, args.resume)
    done = {r["image"] for r in records}
    with open(stream, "a") as fh:

        def emit(rec):
            records.append(rec)
            fh.write(json.dumps(rec) + "\n")
            fh.flush()

        for s in tqdm([s for s in samples if s.image_path.name not in done], desc="aflw", unit="img"):
            rec = run_one(read_image(s.image_path), detector, regressor, config, s.box)
            emit({"image": s.image_path.name, "yaw": s.yaw, "bin": yaw_bin(s.yaw), "kind": "aflw", **rec})
        for name, im in tqdm(list(no_face_images()), desc="no-face", unit="img"):
            if name not in done:
                emit({"image": name, "kind": "no_face", **run_one(im, detector, regressor, config)})
    aflw = [r for r in records if r["kind"] == "aflw"]
    no_face = [r for r in records if r["kind"] == "no_face"]
    summary = {
        "data": str(args.data),
        "subsample": f"{len(aflw)} of {len(load_aflw(args.data))} images, evenly spaced in sorted order",
        "proposal_config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "command": " ".join(sys.argv),
        "results": summarise(aflw, no_face, thresholds),
    }
    atomic_write_json(out, summary)
    print(json.dumps(summary["results"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
