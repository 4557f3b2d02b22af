"""The mouth cycle: open mouths closed and reopened: the hand fill vs the texture generator.

    .venv/bin/python scripts/bench/bench_mouth_cycle.py --per-bin 40 --out out/bench_mouth_cycle.json

Photos never trained on: the first photo of each LFW person outside the generators' training people
(``--lfw-people-of``) and the held-out half of the AFLW2000-3D dev set. Each face whose fitted
mouth is open (:func:`editing.cycle.mouth_open`, the training data's rule) is edited to
``neutral`` and back to its own fitted weights (:func:`editing.cycle.edit_and_back`); the real
photo is the truth. Per face, in the mouth region (:func:`editing.cycle.mouth_region` of the
fitted landmarks):

- PSNR and SSIM against the photo, and the perceptual distance (the FER classifier's early
  feature maps, :class:`editing.compare.perceptual.FerPerceptual`);
- ``none``: the warp path's own fill (``--refine none``); ``gan``: the texture generator
  (``--generator``, default the shipped ``assets/gan3d``) pasted over what the fill drew.

Per |yaw| bin (the fitted yaw): medians, the paired difference (gan - none) with its bootstrap
interval, and KID of 96 px mouth crops (the same FER feature maps' channel means and spreads)
against the real photos' mouths, the median over random half-splits with the paired difference;
``--grain`` also scores both with the photo's own grain added over what the fill drew (the
generator's output is smooth: does the realism gap come from that?). Rows stream to
``<out>.jsonl``; ``--resume`` continues.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from editing.api import EditContext
from editing.compare.metrics import bin_name, bootstrap_ci, masked_psnr, masked_ssim, split_kid
from editing.compare.perceptual import FerPerceptual
from editing.cycle import edit_and_back, mouth_open, mouth_region
from editing.expressions import parse_expressions
from editing.gan.checkpoint import SHIPPED, load_generators
from editing.gan.refine import refine_face_edit
from editing.gan.selection import lfw_heldout_photos
from face3d.eval.aflw import load_aflw, select_split
from face3d.eval.metrics import BIN_NAMES
from face3d.fit import fit_image
from face3d.io import atomic_write_json, read_image

CROP = 96
"""Side of the mouth crops (KID and the perceptual distance), pixels."""


def mouth_crop(image: np.ndarray, lm: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """A square crop of side twice the mouth width centred on the outer lips, resized to CROP."""
    lips = lm[48:60]
    cx, cy = lips.mean(0)
    side = 2.0 * max(float(np.ptp(lips[:, 0])), 4.0)
    M = np.array(
        [[CROP / side, 0, CROP / 2 - cx * CROP / side], [0, CROP / side, CROP / 2 - cy * CROP / side]]
    )
    src = image if mask is None else mask.astype(np.float32)
    return cv2.warpAffine(src, M, (CROP, CROP), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def _tensor(crop: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(crop)).float()
    return (t.permute(2, 0, 1) / 255.0)[None] if t.ndim == 3 else t[None, None]


def photos(args) -> list[tuple[str, Path]]:
    """(set name, path) of every held-out photo, AFLW interleaved with LFW."""
    aflw = [("aflw", s.image_path) for s in select_split(load_aflw(args.aflw), "heldout")]
    lfw = [("lfw", p) for p in lfw_heldout_photos(args.lfw, args.lfw_people_of)]
    out = []
    for i in range(max(len(aflw), len(lfw))):
        out += ([aflw[i]] if i < len(aflw) else []) + ([lfw[i]] if i < len(lfw) else [])
    return out


def grain(image: np.ndarray, out: np.ndarray, drawn: np.ndarray, lm: np.ndarray, seed: int) -> np.ndarray:
    """``out`` (H, W, 3) uint8 with the photo's own grain added over ``drawn`` (H, W) bool: white
    Gaussian noise of the sigma :func:`face3d.filters.noise_sigma` reads on the skin around the
    mouth of ``image``, the same in the three channels (luminance grain)."""
    from face3d.filters import noise_sigma

    ring = mouth_region(lm, image.shape[:2], 0.5) & ~mouth_region(lm, image.shape[:2], 0.0)
    sigma = noise_sigma(torch.from_numpy(image.astype(np.float32) / 255.0), torch.from_numpy(ring)) * 255.0
    noise = np.random.default_rng(seed).normal(0.0, sigma, image.shape[:2])[..., None]
    noisy = np.clip(out.astype(np.float64) + noise, 0, 255)
    return np.where(drawn[..., None], np.round(noisy), out).astype(np.uint8)


def measure(image, face, ctx, via, bundle, perc, with_grain: bool = False) -> dict:
    """One face's cycle, scored for the fill and the generator (and, ``with_grain``, the realism
    features of both with the photo's grain added over what the fill drew: :func:`grain`)."""
    cyc = edit_and_back(ctx.editor, image, face, via)
    t0 = time.perf_counter()
    gan = refine_face_edit(bundle, face, cyc.back)
    gan_ms = (time.perf_counter() - t0) * 1e3
    lm = face.fit.landmarks_fitted[0].detach().cpu().double().numpy()
    mouth = mouth_region(lm, image.shape[:2])
    real_crop, weight = mouth_crop(image, lm), torch.from_numpy(mouth_crop(image, lm, mouth))[None, None]
    row = {
        "yaw": float(face.fit.yaw_pitch_roll[0, 0]),
        "gan_ms": gan_ms,
        "drawn_px": int(cyc.back.synthesized.sum()),
    }
    feats = {"real": perc.statistics(_tensor(real_crop))[0].tolist()}
    for name, out in (("none", cyc.back.image), ("gan", gan)):
        crop = mouth_crop(out, lm)
        with torch.no_grad():
            row[f"lpips_{name}"] = float(perc(_tensor(crop), _tensor(real_crop), weight))
        row[f"psnr_{name}"] = masked_psnr(image, out, ~mouth)
        row[f"ssim_{name}"] = masked_ssim(image, out, ~mouth)
        feats[name] = perc.statistics(_tensor(crop))[0].tolist()
        if with_grain:
            grained = grain(image, out, cyc.back.synthesized, lm, seed=int(image.sum()) % 2**31 + len(feats))
            feats[f"{name}_grain"] = perc.statistics(_tensor(mouth_crop(grained, lm)))[0].tolist()
    return {**row, "features": feats}


def realism(rows: list[dict]) -> dict:
    """KID (x 100) of each method's mouth crops against the real photos' mouths: the median over
    200 random half-splits (a crop never meets its own photo; :func:`split_kid`), and the paired
    difference gan - none over the same splits (median and 95 % range) with the share of splits in
    which the generator's is the lower."""
    if len(rows) < 8:
        return {}
    real = np.array([r["features"]["real"] for r in rows])
    keys = [k for k in ("none", "gan", "none_grain", "gan_grain") if all(k in r["features"] for r in rows)]
    per = split_kid({k: np.array([r["features"][k] for r in rows]) for k in keys}, real)
    out = {f"kid_{k}": float(np.median(v)) for k, v in per.items()}
    for suffix in ("", "_grain") if "gan_grain" in per else ("",):
        d = per["gan" + suffix] - per["none" + suffix]
        out[f"kid_diff{suffix}"] = [float(np.median(d)), *map(float, np.percentile(d, [2.5, 97.5]))]
        out[f"kid_gan_lower{suffix}"] = float((d < 0).mean())
    return out


def summarize(rows: list[dict]) -> dict:
    out = {"all": {"faces": len(rows), **realism(rows)}}
    for b in BIN_NAMES:
        rs = [r for r in rows if bin_name(r["yaw"]) == b]
        if not rs:
            continue
        s = {"faces": len(rs)}
        for m in ("psnr", "ssim", "lpips"):
            for k in ("none", "gan"):
                s[f"{m}_{k}_median"] = float(np.median([r[f"{m}_{k}"] for r in rs]))
            mean, lo, hi, _ = bootstrap_ci([r[f"{m}_gan"] - r[f"{m}_none"] for r in rs], cap=60)
            s[f"{m}_diff"] = [mean, lo, hi]
        s.update(realism(rs))
        s["gan_ms_median"] = float(np.median([r["gan_ms"] for r in rs]))
        out[b] = s
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, default=Path("../shared/data/lfw"))
    ap.add_argument("--aflw", type=Path, default=Path("../shared/data/aflw2000-3d-dev"))
    ap.add_argument("--lfw-people-of", type=int, default=1200)
    ap.add_argument("--per-bin", type=int, default=40, help="stop once every bin has this many faces")
    ap.add_argument("--max-photos", type=int, default=None, help="scan at most this many photos")
    ap.add_argument("--generator", type=Path, default=SHIPPED["texture"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--grain", action="store_true", help="also score both with the photo's grain added")
    ap.add_argument("--out", type=Path, default=Path("out/bench_mouth_cycle.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ctx = EditContext.from_dir(refine="none")
    names = tuple(ctx.fit_model.expression_names)
    via = parse_expressions("neutral", names)[0]
    bundle, perc = load_generators(args.generator), FerPerceptual()
    stream = args.out.with_suffix(".jsonl")
    rows = (
        [json.loads(s) for s in stream.read_text().splitlines()] if args.resume and stream.is_file() else []
    )
    done = {r.get("image") or r.get("skipped") for r in rows}
    counts = Counter(bin_name(r["yaw"]) for r in rows if "yaw" in r)
    stream.parent.mkdir(parents=True, exist_ok=True)
    todo = photos(args)[: args.max_photos]
    with open(stream, "a" if args.resume else "w") as f:
        for kind, path in tqdm(todo, desc="mouth cycles", unit="photo"):
            if min(counts[b] for b in BIN_NAMES) >= args.per_bin:
                break
            if str(path) in done:
                continue
            image = read_image(path)
            faces = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector, 1, regressor=ctx.regressor)
            if not faces or not mouth_open(faces[0], names):
                row = {"skipped": str(path)}
            else:
                b = bin_name(float(faces[0].fit.yaw_pitch_roll[0, 0]))
                if counts[b] >= args.per_bin:
                    continue
                row = {
                    "image": str(path),
                    "set": kind,
                    **measure(image, faces[0], ctx, via, bundle, perc, args.grain),
                }
                counts[b] += 1
            rows.append(row)
            f.write(json.dumps(row) + "\n")
            f.flush()
    faces = [r for r in rows if "yaw" in r]
    result = {
        "command": " ".join(sys.argv),
        "generator": str(args.generator),
        "generator_step": bundle.meta.get("step"),
        "faces": len(faces),
        "per_bin": summarize(faces),
    }
    atomic_write_json(args.out, result)
    print(json.dumps(result["per_bin"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
