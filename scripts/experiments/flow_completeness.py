"""Does the optical-flow reader (editing.compare.flow_reader) agree with dlib where dlib works?

Per face and target (3D edits, ``--refine none``) it records the change of each class measure in
the nose frame read five ways: dlib on the photo and on the edit; dlib's landmarks of the photo
carried by the flow; the ground-truth landmarks carried by the flow; and both carried with the
inner lips moved by the flow on their lips' tissue (``*_tissue``,
:func:`editing.compare.flow_reader.flow_landmarks`: what ``bench_edit.py --quality`` uses at
every yaw, from the ground truth). Near frontal, where dlib reads expressions, the
per-measure medians and correlations say which measures the flow reads; beyond 30° only the flow
is meaningful. Completeness on the flow's measures is given for dlib (inter-ocular units) and
the flow (nose units) alike.

    .venv/bin/python scripts/experiments/flow_completeness.py --per-bin 30 --out out/flow_completeness.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from editing.api import EditContext, edit_fitted
from editing.compare.flow_reader import FLOW_MEASURES, flow_landmarks, flow_points, nose_measures
from editing.compare.quality import (
    FER_CLASSES,
    completeness,
    fit_on_box,
    landmark_measures,
    landmark_references,
    load_fer_faces,
)
from editing.expressions import parse_expressions
from face3d.detect import dlib_box_from_landmark_box, predict_landmarks
from face3d.eval import BIN_NAMES, select_split, stratified, yaw_bin
from face3d.eval.aflw import load_aflw
from face3d.io import atomic_write_json, read_image

READERS = ("dlib", "flow_dlib", "flow_gt", "flow_dlib_tissue", "flow_gt_tissue")


def _change(before: dict, after: dict) -> dict[str, float]:
    return {k: float(after[k] - before[k]) for k in before}


def _corner_lifts(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """Upward motion (nose units) of the mouth corner on the camera's side (the one farther from
    the nose across the image), the far corner and the lower lip's middle (57), from (68, 2)
    landmarks before and after."""
    up = before[27] - before[33]
    unit = float(np.linalg.norm(up))
    lift = (after - before) @ (up / unit) / unit
    across = np.abs(before[[48, 54], 0] - before[33, 0])
    near, far = (48, 54) if across[0] > across[1] else (54, 48)
    return {
        "lift_near_corner": float(lift[near]),
        "lift_far_corner": float(lift[far]),
        "lift_lower_lip": float(lift[57]),
    }


def read_face(s, ctx, specs, refs: dict) -> list[dict]:
    """The rows of one AFLW sample: per target, each reader's change per measure and completeness."""
    image = read_image(s.image_path)
    face = fit_on_box(ctx, image, s.box)
    if face is None:
        return []
    outs = edit_fitted(image, [face], specs, ctx).outputs
    box = dlib_box_from_landmark_box(s.box)
    dlib0 = predict_landmarks(image, box)
    rows = []
    for spec in specs:
        out, label = outs[spec.label], spec.label
        dlib1 = predict_landmarks(out, box)
        pairs = {  # reader -> (nose-frame measures before, after)
            "flow_dlib_tissue": (
                nose_measures(dlib0),
                nose_measures(flow_landmarks(image, out, dlib0), dlib0),
            ),
            "flow_gt_tissue": (
                nose_measures(s.landmarks, yaw=s.yaw),
                nose_measures(flow_landmarks(image, out, s.landmarks), s.landmarks, s.yaw),
            ),
            "dlib": (nose_measures(dlib0), nose_measures(dlib1, dlib0)),
            "flow_dlib": (nose_measures(dlib0), nose_measures(flow_points(image, out, dlib0), dlib0)),
            "flow_gt": (
                nose_measures(s.landmarks, yaw=s.yaw),
                nose_measures(flow_points(image, out, s.landmarks), s.landmarks, s.yaw),
            ),
        }
        io = (landmark_measures(dlib0), landmark_measures(dlib1), refs["io"][label], label, 0.01)
        row = {"image": s.image_path.name, "bin": BIN_NAMES[yaw_bin(s.yaw)], "yaw": s.yaw, "target": label}
        row["completeness_dlib"] = completeness(*io)
        row["completeness_dlib_flow_measures"] = completeness(*io, FLOW_MEASURES[label])
        b, a = pairs["flow_gt_tissue"]
        row["completeness_flow"] = completeness(b, a, refs["nose"][label], label, 0.01, FLOW_MEASURES[label])
        row.update({f"change_{k}": _change(*v) for k, v in pairs.items()})
        row.update(_corner_lifts(s.landmarks, flow_points(image, out, s.landmarks)))
        rows.append(row)
    return rows


def summarise(rows: list[dict], labels: list[str]) -> dict:
    """Per bin and target: medians of completeness and of each reader's change per measure, and
    each flow reader's correlation with dlib's change per measure."""
    out = {}
    for b in BIN_NAMES:
        for label in labels:
            mine = [r for r in rows if r["bin"] == b and r["target"] == label]
            if not mine:
                continue
            cell = {"n": len(mine)}
            for k in ("completeness_dlib", "completeness_dlib_flow_measures", "completeness_flow",
                      "lift_near_corner", "lift_far_corner", "lift_lower_lip"):  # fmt: skip
                cell[k] = float(np.nanmedian([r[k] for r in mine]))
            for m in mine[0]["change_dlib"]:
                a = np.array([[r[f"change_{k}"][m] for k in READERS] for r in mine])
                cell[m] = {k: float(np.median(a[:, i])) for i, k in enumerate(READERS)}
                for i, k in enumerate(READERS[1:], 1):
                    cell[m][f"r_{k}"] = float(np.corrcoef(a[:, 0], a[:, i])[0, 1]) if len(a) > 2 else None
            out[f"{b} {label}"] = cell
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aflw", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--fer", default="../shared/data/fer2013/fer2013_48.npz")
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--per-bin", type=int, default=30)
    ap.add_argument("--expressions", default="happy,surprise")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ctx = EditContext.from_dir(refine="none")
    specs = parse_expressions(args.expressions, ctx.fit_model.expression_names)
    fer = load_fer_faces(args.fer, FER_CLASSES, 100)
    refs = {"io": landmark_references(fer), "nose": landmark_references(fer, measure=nose_measures)}
    samples = stratified(select_split(load_aflw(args.aflw), args.split), args.per_bin)
    rows = []
    for s in tqdm(samples, desc="flow completeness", unit="img"):
        rows += read_face(s, ctx, specs, refs)
    summary = summarise(rows, [sp.label for sp in specs])
    result = {"command": " ".join(sys.argv), "references": refs, "summary": summary, "rows": rows}
    atomic_write_json(Path(args.out), result)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
