"""The 3D edit: its speed per stage, or its quality per |yaw| bin (``--quality``).

    .venv/bin/python scripts/bench/bench_edit.py --data ../shared/data/lfw --n 12 --out out/bench_edit.json
    .venv/bin/python scripts/bench/bench_edit.py --quality --per-bin 10 --threads 1 --out out/q.json

Speed: LFW photos are rescaled so the detected face box is ``--face-size`` px wide; each is edited
to ``--expressions``. Medians over all faces and targets; the first image is a warm-up. With
``--full-res`` each face is also edited at its full resolution (``EditConfig.max_face_px`` 0: the
baseline of a face larger than the cap), in the same run: both times, their ratio per image and
the PSNR between the two outputs over the pixels either changed.

Quality: the AFLW2000-3D dev held-out half (``--per-bin`` faces per |yaw| bin, fitted on the
ground-truth landmark box), each edited to ``--expressions`` with ``--refine``; per bin and
target the medians of :func:`editing.compare.quality.measure_photo`'s measures (speckles, pixels
changed outside the grown landmark box and in the padding, identity, completeness toward the
FER2013 class median, the inner mouth's luminance, seconds per edit, the intensity-0 round trip),
and completeness pooled over the bin's faces (summed change over summed gap). Completeness is read
by dlib (near frontal only) and, at every yaw, by the flow reader on the ground-truth landmarks
(:mod:`editing.compare.flow_reader`), whose references are moved to the ground truth's landmark
convention by :func:`~editing.compare.flow_reader.convention_offset` on ``--calibrate-n``
near-frontal photos of the train half.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from editing.api import EditContext
from editing.expressions import parse_expressions
from face3d.io import atomic_write_json, list_images, read_image


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/lfw")
    ap.add_argument("--n", type=int, default=12, help="images (the first one is a warm-up)")
    ap.add_argument("--face-size", type=int, default=256)
    ap.add_argument("--full-res", action="store_true",
                    help="speed: also edit every face at full resolution (max_face_px 0)")  # fmt: skip
    ap.add_argument("--expressions", default="happy,surprise")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="out/bench_edit.json")
    ap.add_argument("--quality", action="store_true", help="measure the edits' quality per yaw bin")
    ap.add_argument("--aflw", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--fer", default="../shared/data/fer2013/fer2013_48.npz")
    ap.add_argument("--per-bin", type=int, default=10, help="quality: faces per |yaw| bin")
    ap.add_argument("--split", choices=("heldout", "train"), default="heldout",
                    help="quality: the AFLW2000-3D dev half (train: for calibration)")  # fmt: skip
    ap.add_argument("--fer-n", type=int, default=100, help="quality: FER2013 test faces per class")
    ap.add_argument("--calibrate-n", type=int, default=200,
                    help="quality: near-frontal train photos matching the flow reader to dlib")  # fmt: skip
    ap.add_argument("--refine", choices=("none", "auto", "gan"), default="none")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quality:
        return quality(args)
    return speed(args)


def speed(args) -> int:
    paths, _ = list_images([args.data])
    paths = paths[:: max(1, len(paths) // max(args.n, 1))][: args.n]
    ctx = EditContext.from_dir()
    specs = parse_expressions(args.expressions, ctx.fit_model.expression_names)
    from editing.edit3d import Editor3D
    from face3d.fit import fit_image

    full_res = None
    if args.full_res:  # the baseline: every face at its own resolution
        full_res = Editor3D(ctx.editor.model, replace(ctx.editor.config, max_face_px=0))
    stages: dict[str, list[float]] = {
        k: [] for k in ("detect", "landmarks", "fit", "texture", "render", "composite")
    }
    totals, full_ms, ratios, agree = [], [], [], []
    for i, p in enumerate(tqdm(paths, desc="bench_edit", unit="img")):
        image = read_image(p)
        faces = ctx.detector.detect(image, 1)
        if not faces:
            continue
        x0, y0, x1, y1 = faces[0].box
        s = args.face_size / max(x1 - x0, 1)
        image = cv2.resize(
            image, (round(image.shape[1] * s), round(image.shape[0] * s)), interpolation=cv2.INTER_CUBIC
        )
        t0 = time.perf_counter()
        fitted = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector, max_faces=1)
        if not fitted:
            continue
        edits = ctx.editor.edit_face(image, fitted[0], specs)
        total = (time.perf_counter() - t0) * 1e3
        if full_res is not None:
            t1 = time.perf_counter()
            baseline = full_res.edit_face(image, fitted[0], specs)
            ms = (time.perf_counter() - t1) * 1e3
        if i == 0:
            continue  # warm-up: model loading and compilation
        totals.append(total)
        for k in ("detect", "landmarks", "fit"):
            stages[k].append(fitted[0].timings_ms[k])
        stages["texture"].append(edits[0].timings_ms["texture"])
        for e in edits:
            stages["render"].append(e.timings_ms["render"])
            stages["composite"].append(e.timings_ms["composite"])
        if full_res is not None:
            edit_ms = sum(e.timings_ms["render"] + e.timings_ms["composite"] for e in edits)
            full_ms.append(ms)
            ratios.append(ms / (edit_ms + edits[0].timings_ms["texture"]))
            agree += [_changed_psnr(image, a.image, b.image) for a, b in zip(edits, baseline, strict=True)]
    med = {k: round(float(np.median(v)), 1) for k, v in stages.items() if v}
    result = {
        "command": " ".join(sys.argv),
        "images": len(totals),
        "face_size_px": args.face_size,
        "targets_per_image": len(specs),
        "max_face_px": ctx.editor.config.max_face_px,
        "median_ms_per_stage": med,
        "median_ms_per_image_all_targets": round(float(np.median(totals)), 1) if totals else None,
        "threads": args.threads,
    }
    if full_ms:
        result["full_res"] = {
            "median_edit_ms_per_image": round(float(np.median(full_ms)), 1),
            "median_speedup": round(float(np.median(ratios)), 2),
            "median_psnr_db_against_full_res": round(float(np.median(agree)), 2),
        }
    atomic_write_json(Path(args.out), result)
    print(result)
    return 0


def _changed_psnr(image: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) between two edits of ``image`` over the pixels either changed (inf: identical)."""
    changed = (a != image).any(-1) | (b != image).any(-1)
    err = float(((a[changed].astype(np.float64) - b[changed]) ** 2).mean()) if changed.any() else 0.0
    return float("inf") if err == 0 else 10 * np.log10(255.0**2 / err)


def quality(args) -> int:
    from editing.compare.flow_reader import FLOW_MEASURES, VISIBLE_MEASURES, convention_offset
    from editing.compare.quality import (
        FER_CLASSES,
        class_references,
        load_fer_faces,
        measure_photo,
        pooled_completeness,
        real_mouths,
    )
    from face3d.detect import dlib_box_from_landmark_box, face_descriptor, predict_landmarks
    from face3d.eval import BIN_NAMES, select_split, stratified, yaw_bin
    from face3d.eval.aflw import load_aflw

    if args.expressions == "happy,surprise":
        args.expressions = "happy,surprise,open_mouth"
    ctx = EditContext.from_dir(refine=args.refine)
    specs = parse_expressions(args.expressions, ctx.fit_model.expression_names)
    references = class_references(ctx, load_fer_faces(args.fer, FER_CLASSES, args.fer_n))
    every = load_aflw(args.aflw)
    samples = stratified(select_split(every, args.split), args.per_bin)
    # the flow reader measures the ground-truth landmarks: its references move to their convention
    calibration = [s for s in select_split(every, "train") if abs(s.yaw) < 30][: args.calibrate_n]
    offset = convention_offset(
        (s.landmarks, predict_landmarks(read_image(s.image_path), dlib_box_from_landmark_box(s.box)), s.yaw)
        for s in calibration
    )
    for c in FER_CLASSES:
        references[f"nose:{c}"] = {k: v + offset[k] for k, v in references[f"nose:{c}"].items()}
    rows = []
    for s in tqdm(samples, desc="bench_edit quality", unit="img"):
        image = read_image(s.image_path)
        got = measure_photo(image, s.box, ctx, specs, references, face_descriptor, s.landmarks, s.yaw)
        for r in got or []:
            rows.append({"image": s.image_path.name, "bin": BIN_NAMES[yaw_bin(s.yaw)], **r})
    skip = ("image", "bin", "target", "dlib_before", "dlib_after", "flow_before", "flow_after")
    keys = [k for k in rows[0] if k not in skip] if rows else []

    def median(b: str, label: str, key: str) -> float:
        vals = [r[key] for r in rows if r["bin"] == b and r["target"] == label]
        return round(float(np.nanmedian(vals)), 4) if vals else float("nan")

    def pooled(b: str, label: str, reader: str = "dlib", measures=None) -> float:
        mine = [r for r in rows if r["bin"] == b and r["target"] == label]
        mine = [r for r in mine if r[f"{reader}_after"] is not None]
        frame = "dlib" if reader == "dlib" else "nose"
        measures = measures or (None if reader == "dlib" else FLOW_MEASURES.get(label))
        ref = references.get(f"{frame}:{label}")
        if not mine or ref is None:
            return float("nan")
        befores, afters = [r[f"{reader}_before"] for r in mine], [r[f"{reader}_after"] for r in mine]
        return round(pooled_completeness(befores, afters, ref, label, measures), 4)

    table = {b: {sp.label: {k: median(b, sp.label, k) for k in keys} for sp in specs} for b in BIN_NAMES}
    for b in BIN_NAMES:
        for sp in specs:
            table[b][sp.label]["completeness_dlib_pooled"] = pooled(b, sp.label)
            table[b][sp.label]["completeness_flow_pooled"] = pooled(b, sp.label, "flow")
            visible = VISIBLE_MEASURES.get(sp.label)
            table[b][sp.label]["completeness_flow_visible_pooled"] = (
                pooled(b, sp.label, "flow", visible) if visible else float("nan")
            )
    result = {
        "command": " ".join(sys.argv),
        "refine": args.refine,
        "faces": len({r["image"] for r in rows}),
        "per_bin": args.per_bin,
        "fer_references": references,
        "flow_convention_offset": offset,
        "real_open_mouths_train_half": real_mouths(select_split(every, "train")),
        "median_per_bin": table,
        "rows": rows,
    }
    atomic_write_json(Path(args.out), result)
    print(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
