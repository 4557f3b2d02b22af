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
  60 degrees, fitted on the ground-truth box and edited to ``open_mouth``, ``surprise`` and
  ``happy`` by the warp path; the pixels it drew (:attr:`FaceEdit.synthesized`).

Medians over photos; the hue as red / green and blue / green relative to the skin's (1: the
skin's hue).

With ``--fer`` the edits are also read as FER2013 faces are, against the real faces of their class
(:func:`fer_rows`): real open mouths of the dev photos are mostly smiles, whose raised upper lip
shows the teeth, while a surprised mouth is mostly cavity and tongue.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from face3d.render.texture_fill import LUMA_601

LUMA = np.array(LUMA_601)


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
    (3,), the luminance's standard deviation over the skin's luminance, and the brighter half's
    own variation (standard deviation over mean: teeth banded by their shading read high)."""
    y = pixels @ LUMA
    cut = np.percentile(y, 70)
    upper = y[y >= np.percentile(y, 50)]
    return {
        "dark": (pixels[y <= cut].mean(0) / skin).tolist(),
        "bright": (pixels[y >= cut].mean(0) / skin).tolist(),
        "spread": float(y.std() / max(skin @ LUMA, 1e-6)),
        "bright_variation": float(upper.std() / max(upper.mean(), 1e-6)),
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


def closed_mouth_edits(ctx, samples, n: int, targets: str, max_yaw: float, colour_only: bool, desc: str):
    """The first ``n`` photos of ``samples`` under ``max_yaw`` degrees whose labelled lips are closed
    (gap under 0.05), grey ones skipped when ``colour_only``, fitted on the ground-truth box and
    edited by ``ctx`` to ``targets``: yields ``(sample, image, specs, ImageEdit)``."""
    from editing.api import edit_fitted
    from editing.compare.quality import fit_on_box
    from editing.expressions import parse_expressions
    from face3d.io import read_image

    specs = parse_expressions(targets, ctx.fit_model.expression_names)
    done = 0
    for s in tqdm(samples, desc=desc, unit="photo"):
        if done >= n:
            break
        if abs(s.yaw) >= max_yaw or lip_gap(s.landmarks) > 0.05:
            continue
        image = read_image(s.image_path)
        face = None if colour_only and _grey(image) else fit_on_box(ctx, image, s.box)
        if face is None:
            continue
        done += 1
        yield s, image, specs, edit_fitted(image, [face], specs, ctx)


def drawn_rows(ctx, samples, n: int) -> list[dict]:
    rows = []
    for s, image, specs, result in closed_mouth_edits(
        ctx, samples, n, "open_mouth,surprise,happy", 60, True, "drawn"
    ):
        skin = skin_colour(image, s.landmarks)
        for k, spec in enumerate(specs):
            drawn = result.faces[0][1][k].synthesized
            if drawn is not None and drawn.sum() >= 30:
                stats = interior_stats(result.outputs[spec.label][drawn].astype(np.float64), skin)
                rows.append({"image": s.image_path.name, "yaw": s.yaw, "target": spec.label, **stats})
    return rows


FER_SIZE = 192
"""FER2013's 48 px faces are read at this size (bicubic), as the completeness references are."""


def fer_stats(face48: np.ndarray) -> dict | None:
    """Of a (48, 48) grey face: dlib's landmarks at :data:`FER_SIZE` on the fixed box of the
    completeness references, then the inner mouth's luminance mean and spread over the skin ring's
    luminance; None where dlib reads the lips closed (under 30 px inside them at that size)."""
    from editing.compare.quality import fer_photo, mouth_stats
    from face3d.detect import predict_landmarks

    photo = fer_photo(face48, FER_SIZE)
    box = (0.05 * FER_SIZE,) * 2 + (0.95 * FER_SIZE,) * 2
    lm = predict_landmarks(photo, box)
    mean, spread, n = mouth_stats(photo, lm)
    if n < 30:
        return None
    skin = float(skin_colour(photo, lm) @ LUMA)
    return {"mean": mean / skin, "spread": spread / skin}


def as_fer_face(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(48, 48) uint8 grey: a photo framed as FER2013 frames its faces, a square around the (68, 2)
    ``landmarks`` 1.15 times their box's larger side, its centre raised by a tenth of that side."""
    (x0, y0), (x1, y1) = landmarks.min(0), landmarks.max(0)
    side = 1.15 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.1 * side
    m = np.array([[48 / side, 0, 24 - cx * 48 / side], [0, 48 / side, 24 - cy * 48 / side]])
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.warpAffine(grey, m, (48, 48), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def fer_rows(ctx, fer_path: str, samples, n: int, classes=("happy", "surprise")) -> dict:
    """Per class: FER2013's first 200 test faces of the class, and the edits to it of the first
    ``n`` near-frontal (under 30 degrees) closed-mouth photos of ``samples`` (fitted on the
    ground-truth box, :func:`as_fer_face`), each read by :func:`fer_stats`."""
    from editing.compare.quality import load_fer_faces

    real = load_fer_faces(fer_path, classes, 200)
    out = {c: {"real": [r for r in map(fer_stats, real[c]) if r], "drawn": [], "faces": 0} for c in classes}
    for s, _, specs, result in closed_mouth_edits(ctx, samples, n, ",".join(classes), 30, False, "fer"):
        for spec in specs:
            out[spec.label]["faces"] += 1
            got = fer_stats(as_fer_face(result.outputs[spec.label], s.landmarks))
            if got:
                out[spec.label]["drawn"].append(got)
    return out


def fer_summary(rows: dict) -> dict:
    """Per class and side: the faces read open and the medians of :func:`fer_stats`."""
    res = {}
    for c, got in rows.items():
        for side in ("real", "drawn"):
            r = got[side]
            spreads = [x["spread"] for x in r]
            res[f"{side}, {c}"] = {
                "open": len(r),
                "mean": round(float(np.median([x["mean"] for x in r])), 3) if r else None,
                "spread": round(float(np.median(spreads)), 3) if r else None,
                "spread_p10_p90": np.percentile(spreads, [10, 90]).round(3).tolist() if r else None,
            }
        res[f"drawn, {c}"]["of"] = got["faces"]
        res[f"real, {c}"]["of"] = 200
    return res


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
        "bright_luma": round(float(np.median(np.array([r["bright"] for r in rows]) @ LUMA)), 3),
        "spread": round(float(np.median([r["spread"] for r in rows])), 3),
        "bright_variation": round(float(np.median([r["bright_variation"] for r in rows])), 3),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aflw", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--split", default="train", choices=("train", "heldout"))
    ap.add_argument("--n", type=int, default=30, help="closed-mouth photos edited")
    ap.add_argument("--min-gap", type=float, nargs="+", default=[0.3, 0.4])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fer", default="", help="FER2013 npz: also read the edits as FER faces")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from editing.api import EditContext
    from face3d.eval.aflw import load_aflw, select_split
    from face3d.io import atomic_write_json

    samples = select_split(load_aflw(args.aflw), args.split)
    real = real_rows(samples, min(args.min_gap))
    ctx = EditContext.from_dir(refine="none")
    drawn = drawn_rows(ctx, samples, args.n)
    result = {f"real, gap >= {g}": summary([r for r in real if r["gap"] >= g]) for g in args.min_gap}
    for target in ("open_mouth", "surprise", "happy"):
        result[f"drawn, {target}"] = summary([r for r in drawn if r["target"] == target])
    fer = fer_rows(ctx, args.fer, samples, args.n) if args.fer else {}
    if fer:
        result["fer"] = fer_summary(fer)
    for k, v in result.items():
        print(k, v)
    record = {"command": " ".join(sys.argv), "summary": result, "real": real, "drawn": drawn, "fer": fer}
    atomic_write_json(Path(args.out), record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
