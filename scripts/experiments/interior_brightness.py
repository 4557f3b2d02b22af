"""How bright and how red the drawn mouth interior is, against the photo's own open mouth.

    .venv/bin/python scripts/experiments/interior_brightness.py --split train --per-bin 12 \
        --out out/interior_brightness.json

Each AFLW2000-3D face of ``--split`` whose fitted mouth is open (:func:`editing.cycle.mouth_open`)
is closed to ``neutral`` with the warp path and reopened to its own fitted weights
(:func:`editing.cycle.edit_and_back`): the reopened interior is drawn, and the photo shows what
really lies at those pixels. Per |yaw| bin (the first ``--per-bin`` faces with at least 20 drawn
pixels): the median over faces of the drawn pixels' mean luminance, of the photo's at the same
pixels and of their ratio, the median chromaticity (each channel's share of R + G + B) of both,
and the hue of the drawn pixels' brightest 30 % (``drawn_bright``: mostly teeth). A calibration
of the interior's colours (``editing.mouth``) should bring the ratio to 1.

It also reads real teeth (``real_teeth``): in every colour photo of ``--split`` whose labelled inner
lips are apart (gap over 6 % of the nose-to-chin length), the brightest 30 % of the pixels inside
the labelled inner lips less a 2 px border; per bin the median RGB and the red / green and blue /
green ratios (the enamel's hue of :data:`editing.mouth.PART_COLORS`), and the same ratios of the
drawn teeth of the cycles.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

BINS = ("[0,30)", "[30,60)", "[60,90]")


def real_teeth(samples, bin_name) -> dict:
    """Per |yaw| bin: the median RGB, red / green and blue / green of the brightest 30 % of the
    pixels inside the labelled inner lips (less 2 px) of the colour photos whose lips are apart."""
    import cv2

    from face3d.eval.aflw import lips_apart

    rows: dict[str, list[np.ndarray]] = {b: [] for b in BINS}
    for s in samples:
        lm = s.landmarks
        if not lips_apart(lm):
            continue
        image = cv2.imread(str(s.image_path))[..., ::-1]
        if np.abs(image[..., 0].astype(int) - image[..., 2]).mean() < 4:  # a grey photo
            continue
        inner = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(inner, [np.round(lm[60:68]).astype(np.int32)], 1)
        inner = cv2.erode(inner, np.ones((5, 5), np.uint8)) > 0
        if inner.sum() < 30:
            continue
        px = image[inner].astype(np.float64)
        luma = px @ np.array([0.299, 0.587, 0.114])
        rows[bin_name(abs(s.yaw))].append(px[luma >= np.percentile(luma, 70)].mean(0))
    return {b: _hue(np.array(v)) for b, v in rows.items() if v}


def _hue(rgb: np.ndarray) -> dict:
    """Median RGB and the median red / green and blue / green of (N, 3) colours."""
    return {
        "n": len(rgb),
        "rgb": np.median(rgb, 0).round(1).tolist(),
        "red_green": round(float(np.median(rgb[:, 0] / rgb[:, 1])), 3),
        "blue_green": round(float(np.median(rgb[:, 2] / rgb[:, 1])), 3),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="train", choices=("train", "heldout"))
    ap.add_argument("--per-bin", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--aflw", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from editing.api import EditContext
    from editing.compare.metrics import bin_name
    from editing.cycle import edit_and_back, mouth_open
    from editing.expressions import parse_expressions
    from face3d.eval.aflw import load_aflw, select_split
    from face3d.fit import fit_image
    from face3d.io import atomic_write_json, read_image
    from face3d.render.texture_fill import LUMA_601

    samples = select_split(load_aflw(args.aflw), args.split)
    real = real_teeth(samples, bin_name)
    ctx = EditContext.from_dir(refine="none")
    names = ctx.fit_model.expression_names
    via = parse_expressions("neutral", names)[0]
    luma = np.array(LUMA_601)
    rows: dict[str, list[dict]] = {b: [] for b in BINS}
    for s in tqdm(samples, desc="interior", unit="photo"):
        b = bin_name(abs(s.yaw))
        if len(rows[b]) >= args.per_bin:
            continue
        image = read_image(s.image_path)
        faces = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector, 1, regressor=ctx.regressor)
        if not faces or not mouth_open(faces[0], names):
            continue
        back = edit_and_back(ctx.editor, image, faces[0], via).back
        drawn = back.synthesized
        if drawn.sum() < 20:
            continue
        d, t = back.image[drawn].astype(np.float64), image[drawn].astype(np.float64)
        bright = d @ luma >= np.percentile(d @ luma, 70)
        rows[b].append(
            {
                "image": s.image_path.name,
                "drawn_bright_rgb": d[bright].mean(0).tolist(),
                "drawn_luma": float((d @ luma).mean()),
                "true_luma": float((t @ luma).mean()),
                "drawn_chroma": (d.mean(0) / d.mean(0).sum()).tolist(),
                "true_chroma": (t.mean(0) / t.mean(0).sum()).tolist(),
            }
        )
        if all(len(v) >= args.per_bin for v in rows.values()):
            break
    summary = {}
    for b, got in rows.items():
        if not got:
            continue

        def med(key, got=got):
            return np.median(np.array([r[key] for r in got], np.float64), 0).round(3).tolist()

        ratio = np.median([r["drawn_luma"] / max(r["true_luma"], 1.0) for r in got])
        summary[b] = {
            "faces": len(got),
            "drawn_bright": _hue(np.array([r["drawn_bright_rgb"] for r in got])),
            "drawn_luma": med("drawn_luma"),
            "true_luma": med("true_luma"),
            "luma_ratio": round(float(ratio), 3),
            "drawn_chroma": med("drawn_chroma"),
            "true_chroma": med("true_chroma"),
        }
        print(b, summary[b])
    for b, v in real.items():
        print(b, "real teeth", v)
    out = Path(args.out)
    record = {"command": sys.argv, "summary": summary, "real_teeth": real, "rows": rows}
    atomic_write_json(out, record)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
