"""The drawn mouth interior's colour against the skin around the mouth, beside real open mouths'.

    .venv/bin/python scripts/experiments/interior_colour.py --split train --n 30 \
        --out out/interior_colour/hue_train.json

A pixel-aligned check (``interior_brightness.py``) scores the interior only where a photo's own
opening is reopened, mostly small openings whose front teeth fill them. This one compares
distributions instead, normalised by each photo's own light: per photo, the mean colour of the
darker 70 % and of the brighter 30 % of the inner mouth, each over the mean colour of the skin
around the mouth (the ring of :data:`editing.mouth.TONE_RING` less the lips), and the interior
luminance's spread over the skin's luminance.

* **real:** every colour photo of ``--split`` under 60 degrees of yaw whose labelled inner lips
  are at least ``--min-gap`` nose lengths (27-33) apart; the labelled inner lips' polygon less 2 px.
* **drawn:** the first ``--n`` closed-mouth colour photos (gap under 0.05) of ``--split`` under
  60 degrees, fitted on the ground-truth box and edited to ``open_mouth`` and ``surprise`` by the
  warp path; the pixels it drew (:attr:`FaceEdit.synthesized`).

Medians over photos; the hue as red / green and blue / green relative to the skin's (1: the
skin's hue).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

LUMA = np.array([0.299, 0.587, 0.114])


def lip_gap(landmarks: np.ndarray) -> float:
    """The inner lips' gap (mean of 61-63 to 67-65) in nose lengths (27 to 33)."""
    nose = np.linalg.norm(landmarks[33] - landmarks[27])
    gap = landmarks[[61, 62, 63]].mean(0) - landmarks[[67, 66, 65]].mean(0)
    return float(np.linalg.norm(gap) / max(nose, 1e-6))


def skin_colour(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(3,) mean colour of the skin ring around the outer lips (:data:`editing.mouth.TONE_RING`)."""
    from editing.mouth import TONE_RING, mouth_region

    shape = image.shape[:2]
    ring = mouth_region(landmarks, shape, TONE_RING) & ~mouth_region(landmarks, shape, 0.0)
    return image[ring].astype(np.float64).mean(0)


def interior_stats(pixels: np.ndarray, skin: np.ndarray) -> dict:
    """Of (N, 3) interior ``pixels``: the darker 70 % and brighter 30 % mean colours over ``skin``
    (3,), and the luminance's standard deviation over the skin's luminance."""
    y = pixels @ LUMA
    cut = np.percentile(y, 70)
    return {
        "dark": (pixels[y <= cut].mean(0) / skin).tolist(),
        "bright": (pixels[y >= cut].mean(0) / skin).tolist(),
        "spread": float(y.std() / max(skin @ LUMA, 1e-6)),
        "n_px": len(pixels),
    }


def _grey(image: np.ndarray) -> bool:
    return np.abs(image[..., 0].astype(int) - image[..., 2]).mean() < 4


def real_rows(samples, min_gap: float) -> list[dict]:
    from face3d.io import read_image

    rows = []
    for s in tqdm(samples, desc="real", unit="photo"):
        gap = lip_gap(s.landmarks)
        if abs(s.yaw) >= 60 or gap < min_gap:
            continue
        image = read_image(s.image_path)
        if _grey(image):
            continue
        inner = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(inner, [np.round(s.landmarks[60:68] * 4).astype(np.int32)], 1, shift=2)
        inner = cv2.erode(inner, np.ones((5, 5), np.uint8)) > 0
        if inner.sum() < 30:
            continue
        stats = interior_stats(image[inner].astype(np.float64), skin_colour(image, s.landmarks))
        rows.append({"image": s.image_path.name, "yaw": s.yaw, "gap": gap, **stats})
    return rows


def drawn_rows(samples, n: int) -> list[dict]:
    from editing.api import EditContext, edit_fitted
    from editing.compare.quality import fit_on_box
    from editing.expressions import parse_expressions
    from face3d.io import read_image

    ctx = EditContext.from_dir(refine="none")
    specs = parse_expressions("open_mouth,surprise", ctx.fit_model.expression_names)
    rows, done = [], 0
    for s in tqdm(samples, desc="drawn", unit="photo"):
        if done >= n:
            break
        if abs(s.yaw) >= 60 or lip_gap(s.landmarks) > 0.05:
            continue
        image = read_image(s.image_path)
        face = None if _grey(image) else fit_on_box(ctx, image, s.box)
        if face is None:
            continue
        done += 1
        result = edit_fitted(image, [face], specs, ctx)
        skin = skin_colour(image, s.landmarks)
        for k, spec in enumerate(specs):
            drawn = result.faces[0][1][k].synthesized
            if drawn is not None and drawn.sum() >= 30:
                stats = interior_stats(result.outputs[spec.label][drawn].astype(np.float64), skin)
                rows.append({"image": s.image_path.name, "yaw": s.yaw, "target": spec.label, **stats})
    return rows


def summary(rows: list[dict]) -> dict:
    """Medians over ``rows``: dark and bright colours over the skin, their hue relative to the
    skin's (red / green, blue / green), the dark part's luminance over the skin's, the spread."""
    dark = np.array([r["dark"] for r in rows])
    return {
        "photos": len(rows),
        "dark_over_skin": np.median(dark, 0).round(3).tolist(),
        "bright_over_skin": np.median([r["bright"] for r in rows], 0).round(3).tolist(),
        "dark_red_green": round(float(np.median(dark[:, 0] / dark[:, 1])), 3),
        "dark_blue_green": round(float(np.median(dark[:, 2] / dark[:, 1])), 3),
        "dark_luma": round(float(np.median(dark @ LUMA)), 3),
        "spread": round(float(np.median([r["spread"] for r in rows])), 3),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aflw", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--split", default="train", choices=("train", "heldout"))
    ap.add_argument("--n", type=int, default=30, help="closed-mouth photos edited")
    ap.add_argument("--min-gap", type=float, nargs="+", default=[0.3, 0.4])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from face3d.eval.aflw import load_aflw, select_split
    from face3d.io import atomic_write_json

    samples = select_split(load_aflw(args.aflw), args.split)
    real = real_rows(samples, min(args.min_gap))
    drawn = drawn_rows(samples, args.n)
    result = {f"real, gap >= {g}": summary([r for r in real if r["gap"] >= g]) for g in args.min_gap}
    for target in ("open_mouth", "surprise"):
        result[f"drawn, {target}"] = summary([r for r in drawn if r["target"] == target])
    for k, v in result.items():
        print(k, v)
    record = {"command": " ".join(sys.argv), "summary": result, "real": real, "drawn": drawn}
    atomic_write_json(Path(args.out), record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
