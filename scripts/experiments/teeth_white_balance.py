"""Which of the photo's pixels predict the hue of its own teeth: the skin around the mouth or the sclera?

    .venv/bin/python scripts/experiments/teeth_white_balance.py --out out/teeth_wb.json

The drawn teeth (:mod:`editing.mouth`) are toned to the photo: a share of the skin's colour cast
(``WHITE_BALANCE``). A skin's hue is partly its own, so on a warm photo of a warm face the share
must stay small, and the teeth can read blue-grey beside orange skin. The sclera is near-neutral
whatever the person: its colour in the photo is the light's. This reads, on every colour photo of
the AFLW2000-3D dev set whose labelled inner lips are apart, the real teeth (the brightest 30 % of
the pixels inside the labelled inner lips less 2 px), the skin (the ring of ``TONE_RING`` around
the outer lips, less the lips) and the sclera (:func:`editing.mouth.sclera_colour`: the brightest
30 % inside the larger eye's labelled polygon, glints left out), and predicts the teeth's red /
green and blue / green as
``enamel * skin_cast**a * sclera_cast**b`` (cast: a region's colour over its luminance) with the
enamel calibrated on the train half (the median of teeth / the casts' product) for each pair of
shares. Reported on both halves: the median absolute log error of the two ratios (their mean),
and on the held-out half per |yaw| bin; then, on the photos whose skin is strongly cast, whether
a larger share for the cast's strong part helps (:func:`strong_casts`); and whether the sclera
predicts the teeth's brightness better than the skin (:func:`brightness`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

LUMA = np.array([0.299, 0.587, 0.114])
SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


def _bright(px: np.ndarray, top: float = 0.3) -> np.ndarray | None:
    if len(px) < 8:
        return None
    y = px @ LUMA
    keep = y >= np.percentile(y, 100 * (1 - top))
    return px[keep].mean(0)


def _polygon(points: np.ndarray, shape) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(points * 4).astype(np.int32)], 1, shift=2)
    return m > 0


def read_photo(image: np.ndarray, lm: np.ndarray) -> dict | None:
    """The teeth, skin and sclera colours (0-255 RGB means) of one photo with labelled landmarks
    (68, 2), or None where a region is missing."""
    from editing.mouth import TONE_RING, mouth_region, sclera_colour

    inner = cv2.erode(_polygon(lm[60:68], image.shape[:2]).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    teeth = _bright(image[inner].astype(np.float64))
    ring = mouth_region(lm, image.shape[:2], TONE_RING) & ~mouth_region(lm, image.shape[:2], 0.0)
    skin = image[ring].astype(np.float64).mean(0) if ring.sum() >= 20 else None
    sclera = sclera_colour(image, lm)
    if teeth is None or skin is None or sclera is None:
        return None
    return {"teeth": teeth, "skin": skin, "sclera": sclera}


def _ratios(rgb: np.ndarray) -> np.ndarray:
    """(..., 2) red / green and blue / green of (..., 3) colours."""
    g = np.maximum(rgb[..., 1], 1e-6)
    return np.stack([rgb[..., 0] / g, rgb[..., 2] / g], -1)


def _cast(rgb: np.ndarray) -> np.ndarray:
    return rgb / np.maximum(rgb @ LUMA, 1e-6)[..., None]


def _cast_product(r: dict, a: float, b: float) -> np.ndarray:
    return _cast(r["skin"]) ** a * _cast(r["sclera"]) ** b


def predictors(train: list[dict]) -> dict:
    """Per (skin share a, sclera share b): the enamel (3,) calibrated on ``train``, the median of
    teeth / (skin cast**a * sclera cast**b)."""
    return {
        (a, b): np.median([_cast(r["teeth"]) / _cast_product(r, a, b) for r in train], 0)
        for a in SHARES
        for b in SHARES
    }


def log_errors(rows: list[dict], a: float, b: float, enamel: np.ndarray) -> np.ndarray:
    """Per photo: the mean absolute log error of the predicted red / green and blue / green."""
    pred = np.array([enamel * _cast_product(r, a, b) for r in rows])
    real = np.array([r["teeth"] for r in rows])
    return np.abs(np.log(_ratios(pred)) - np.log(_ratios(real))).mean(-1)


def _log_ratios(rows: list[dict], region: str) -> np.ndarray:
    return np.array([np.log(_ratios(_cast(r[region]))) for r in rows])


def strong_casts(train: list[dict], held: list[dict], threshold: float = 0.2) -> list[dict]:
    """On the photos whose skin's cast is far from the train half's median (log red / green or blue
    / green off by more than ``threshold``): does a larger share for the part of the cast beyond
    ``tau`` predict their teeth better? Model, in log ratios against the train medians: teeth =
    0.25 skin + b * (|skin| - tau)+ * sign(skin) + 0.25 sclera + an offset fitted on the train half."""
    skin0 = np.median(_log_ratios(train, "skin"), 0)
    sclera0 = np.median(_log_ratios(train, "sclera"), 0)

    def predict(rows, b, tau):
        d, e = _log_ratios(rows, "skin") - skin0, _log_ratios(rows, "sclera") - sclera0
        return 0.25 * d + b * np.sign(d) * np.maximum(np.abs(d) - tau, 0.0) + 0.25 * e

    out = []
    for b in (0.0, 0.25, 0.5, 0.75, 1.0):
        for tau in (0.2, 0.3):
            offset = np.median(_log_ratios(train, "teeth") - predict(train, b, tau), 0)
            row = {"beyond_share": b, "tau": tau}
            for name, rows in (("train", train), ("heldout", held)):
                err = np.abs(_log_ratios(rows, "teeth") - predict(rows, b, tau) - offset).mean(-1)
                strong = np.abs(_log_ratios(rows, "skin") - skin0).max(-1) > threshold
                row[name] = float(np.median(err))
                row[f"{name}_strong"] = float(np.median(err[strong]))
                row[f"{name}_strong_n"] = int(strong.sum())
            out.append(row)
            print(
                f"beyond {tau} share {b:.2f}: strong casts "
                f"train {row['train_strong']:.4f} held-out {row['heldout_strong']:.4f}"
            )
    return out


def brightness(train: list[dict], held: list[dict]) -> list[dict]:
    """Does the sclera predict the teeth's luminance better than the skin does? log teeth =
    (1 - b) log skin + b log sclera + an offset fitted on the train half, per share ``b``."""

    def log_luma(rows, region):
        return np.log(np.array([r[region] @ LUMA for r in rows]))

    out = []
    for b in SHARES:
        pred = {n: (1 - b) * log_luma(rows, "skin") + b * log_luma(rows, "sclera") for n, rows in
                (("train", train), ("heldout", held))}  # fmt: skip
        offset = np.median(log_luma(train, "teeth") - pred["train"])
        row = {"sclera_share": b}
        for name, rows in (("train", train), ("heldout", held)):
            row[name] = float(np.median(np.abs(log_luma(rows, "teeth") - pred[name] - offset)))
        out.append(row)
        print(f"brightness, sclera share {b:.2f}: train {row['train']:.3f} held-out {row['heldout']:.3f}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aflw", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    from editing.compare.metrics import bin_name
    from face3d.eval.aflw import lips_apart, load_aflw, select_split
    from face3d.io import atomic_write_json

    every = load_aflw(args.aflw)
    rows = {}
    for split in ("train", "heldout"):
        rows[split] = []
        for s in tqdm(select_split(every, split), desc=split, unit="photo"):
            if not lips_apart(s.landmarks):
                continue
            image = cv2.imread(str(s.image_path))[..., ::-1]
            if np.abs(image[..., 0].astype(int) - image[..., 2]).mean() < 4:  # a grey photo
                continue
            r = read_photo(image, s.landmarks)
            if r is not None:
                rows[split].append({**r, "bin": bin_name(abs(s.yaw)), "image": s.image_path.name})
    preds = predictors(rows["train"])
    held = rows["heldout"]
    result = {"n": {k: len(v) for k, v in rows.items()}, "predictors": []}
    for (a, b), enamel in preds.items():
        err = log_errors(held, a, b, enamel)
        train_err = float(np.median(log_errors(rows["train"], a, b, enamel)))
        bins = sorted({r["bin"] for r in held})
        per_bin = {x: float(np.median(err[[r["bin"] == x for r in held]])) for x in bins}
        result["predictors"].append(
            {
                "skin": a,
                "sclera": b,
                "enamel": enamel.round(3).tolist(),
                "train": train_err,
                "heldout": float(np.median(err)),
                "heldout_per_bin": per_bin,
            }
        )
        print(f"skin {a:.2f} sclera {b:.2f}: train {train_err:.4f} held-out {np.median(err):.4f}")
    result["strong_casts"] = strong_casts(rows["train"], held)
    result["brightness"] = brightness(rows["train"], held)
    atomic_write_json(Path(args.out), {"command": " ".join(sys.argv), **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
