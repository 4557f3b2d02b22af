"""Time the 3D edit per stage (fit, texture, render, composite) at a given face size.

    .venv/bin/python scripts/bench/bench_edit.py --data ../shared/data/lfw --n 12 --out out/bench_edit.json

LFW photos are rescaled so the detected face box is ``--face-size`` px wide; each is edited to
``--expressions``. Medians over all faces and targets; the first image is a warm-up.
"""

from __future__ import annotations

import argparse
import sys
import time
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
    ap.add_argument("--expressions", default="happy,surprise")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="out/bench_edit.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    paths, _ = list_images([args.data])
    paths = paths[:: max(1, len(paths) // max(args.n, 1))][: args.n]
    ctx = EditContext.from_dir()
    specs = parse_expressions(args.expressions, ctx.fit_model.expression_names)
    from face3d.fit import fit_image

    stages: dict[str, list[float]] = {
        k: [] for k in ("detect", "landmarks", "fit", "texture", "render", "composite")
    }
    totals = []
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
        if i == 0:
            continue  # warm-up: model loading and compilation
        totals.append(total)
        for k in ("detect", "landmarks", "fit"):
            stages[k].append(fitted[0].timings_ms[k])
        stages["texture"].append(edits[0].timings_ms["texture"])
        for e in edits:
            stages["render"].append(e.timings_ms["render"])
            stages["composite"].append(e.timings_ms["composite"])
    med = {k: round(float(np.median(v)), 1) for k, v in stages.items() if v}
    result = {
        "command": " ".join(sys.argv),
        "images": len(totals),
        "face_size_px": args.face_size,
        "targets_per_image": len(specs),
        "median_ms_per_stage": med,
        "median_ms_per_image_all_targets": round(float(np.median(totals)), 1) if totals else None,
        "threads": args.threads,
    }
    atomic_write_json(Path(args.out), result)
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
