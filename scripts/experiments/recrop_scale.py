"""How much to grow the regressor's re-crop box, and how often to re-crop (``LandmarkConfig``).

    .venv/bin/python scripts/experiments/recrop_scale.py --split train --out out/recrop_scale_train.json
    .venv/bin/python scripts/experiments/recrop_scale.py --split heldout --out out/recrop_scale_heldout.json

Chooses ``LandmarkConfig.regressor_recrop_scale`` and ``regressor_recrop``. Automatic mode (our own
detection, as ``face3d fit``): every AFLW2000-3D image of the split is detected (all faces); the
detection of the labelled face is the one whose box, mapped to a landmark box, overlaps the ground-
truth box most (at least ``--min-iou``, else the face counts as missed). The network regresses it
from that box, then re-crops ``--steps`` times on the box of its own landmarks grown by each
``--scales`` factor (:func:`face3d.fit.pipeline.recrop_regressions`). ``--protocol`` starts from
the ground-truth box instead (``face3d fit --bbox-file``, where the pipeline does not re-crop).
Writes the network's landmark NME (%) per |yaw| bin after each re-crop, for each factor (the
first pass under ``detector_box``, whichever box it started from). Choose on ``--split train``
(the network was fine-tuned on it), report on ``heldout``. Per-image records stream to
``<out>.jsonl`` (``--resume`` continues them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from face3d.argtypes import float_list, int_at_least
from face3d.eval.aflw import SPLITS, select_split


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--split", default="train", choices=SPLITS)
    ap.add_argument("--per-bin", type=int, default=None, help="at most N images per yaw bin (default all)")
    ap.add_argument(
        "--scales",
        type=float_list(0, open_low=True),
        default="1,1.035,1.05,1.07,1.1",
        help="comma list of box growth factors",
    )
    ap.add_argument("--steps", type=int_at_least(1), default=4, help="re-crops after the detector's box")
    ap.add_argument(
        "--min-iou", type=float, default=0.2, help="overlap a detection needs with the labelled face"
    )
    ap.add_argument(
        "--protocol", action="store_true", help="start from the ground-truth box instead of a detection"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true", help="continue <out>.jsonl")
    ap.add_argument("--out", default="out/recrop_scale.json")
    args = ap.parse_args(argv)
    scales = args.scales

    from face3d.detect import FaceDetector
    from face3d.detect.boxes import best_match, iou
    from face3d.eval.aflw import load_aflw, stratified
    from face3d.eval.metrics import bin_line, bin_table, nme
    from face3d.fit.pipeline import default_regressor, recrop_regressions
    from face3d.io import atomic_write_json, read_image, resume_jsonl
    from face3d.regress.infer import landmark_box_from_detector_box

    samples = stratified(select_split(load_aflw(args.data), args.split), args.per_bin)
    regressor = default_regressor()
    if not samples or regressor is None:
        print("recrop_scale: needs the AFLW2000-3D dev set and the shipped regressor", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    detector = None if args.protocol else FaceDetector()
    stream = Path(args.out).with_suffix(".jsonl")
    records = resume_jsonl(stream, args.resume)
    done = {r["image"] for r in records}
    with stream.open("a") as f:
        for s in tqdm([s for s in samples if s.image_path.name not in done], desc="recrop_scale"):
            image = read_image(s.image_path)
            rec: dict = {"image": s.image_path.name, "yaw": float(s.yaw), "iou": 0.0, "nme": None}
            if args.protocol:
                boxes = [s.box]
            else:
                boxes = [landmark_box_from_detector_box(d.box) for d in detector.detect(image)]
            match = best_match(boxes, s.box, args.min_iou)
            if match is not None:
                first = regressor.predict(image, boxes[match])
                rec["iou"] = iou(boxes[match], s.box)
                rec["nme"] = {"detector_box": nme(first.landmarks, s.landmarks)}
                for k in scales:
                    reg, traj = [first], []
                    for _ in range(args.steps):
                        reg = recrop_regressions(image, regressor, reg, 1, k)
                        traj.append(nme(reg[0].landmarks, s.landmarks))
                    rec["nme"][f"{k:g}"] = traj
            records.append(rec)
            f.write(json.dumps(rec) + "\n")
            f.flush()

    def table(key: str, step: int | None) -> dict:
        vals = [
            (r["yaw"], None if r["nme"] is None else r["nme"][key] if step is None else r["nme"][key][step])
            for r in records
        ]
        return bin_table(vals)

    out = {
        "split": args.split,
        "protocol": args.protocol,
        "images": len(records),
        "min_iou": args.min_iou,
        "detector_box": table("detector_box", None),
        "recrops": {f"{k:g}": {str(n + 1): table(f"{k:g}", n) for n in range(args.steps)} for k in scales},
    }
    for k, rows in out["recrops"].items():
        for n, t in rows.items():
            print(f"scale {k:>6} re-crops {n}: {bin_line(t)}")
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
