"""Ablation of the residual geometry: linear only / + free offsets / + conv reparametrisation.

    nice .venv/bin/python scripts/bench/bench_residual.py --split heldout --per-bin 11 \\
        --out out/bench_residual_v5.json

On a stratified draw of one half of the AFLW2000-3D dev set (``--split``: the ``train`` half chooses
the mechanism, the ``heldout`` half measures it; protocol box, the default landmark stage and
landmark fit), every variant fits albedo x SH shading (and, but for ``linear``, a residual) to the
photo through :func:`face3d.fit.residual.residual_face` (the landmark fit's landmark weights and
convention); then, with ``--noise``, again to the photo with Gaussian noise (same landmark fit, so
only the residual stage sees the noise), scored against the CLEAN photo. Reported per variant:
landmark NME per |yaw| bin of the final mesh's ``landmarks_fitted``; the 3D landmark error
(:func:`face3d.eval.metrics.nme_3d`: camera-space landmarks of the final mesh against ``pt3d_68``
after a similarity alignment); median PSNR of the re-render over the pixels every variant's
photometric mask holds (no outline, no depth jumps: the pixels the fit sees) and its
gain over ``linear`` (paired per face, bootstrap 95 % interval); the drop from clean to noisy; time
per face (the residual stage, ``--threads`` torch threads). ``--variants NAME=PARAM[,FIELD=VALUE]``
override :class:`ResidualConfig` fields (the ablation). A figure (photo | variants, with error heat
maps) goes beside the JSON.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import pickle
import re
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from face3d.crop import photo_mask
from face3d.detect import FaceDetector
from face3d.eval.aflw import load_aflw, select_split, stratified
from face3d.eval.metrics import bin_table, landmark_errors_3d, nme
from face3d.fit import FitConfig
from face3d.fit.pipeline import default_regressor, detect_and_landmark, fit_detections
from face3d.fit.residual import ResidualConfig, residual_face
from face3d.fit.residual_io import render_appearance
from face3d.io import atomic_write_json, read_image, write_image
from face3d.model import MorphableModel

DEFAULT_VARIANTS = ("linear=none", "free=free", "conv=conv")


GROUPS = {
    "jaw": range(17),
    "brows": range(17, 27),
    "nose": range(27, 36),
    "eyes": range(36, 48),
    "mouth": range(48, 68),
}  # the 68 landmarks' parts, for the 3D error per part


def parse_variant(spec: str, steps: int | None) -> tuple[str, ResidualConfig]:
    """``NAME=PARAM[,FIELD=VALUE...]`` -> (NAME, :class:`ResidualConfig`); values are Python literals."""
    name, _, rest = spec.partition("=")
    param, *pairs = re.split(r",(?![^()]*\))", rest) if rest else ("conv",)  # no split inside (...)
    kw: dict = {"parametrisation": param}
    known = {f.name for f in fields(ResidualConfig)}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in known:
            raise SystemExit(f"--variants {spec}: ResidualConfig has no field {key!r}")
        kw[key] = ast.literal_eval(value)
    if steps is not None:
        kw.setdefault("steps", steps)
    return name, ResidualConfig(**kw)


def psnr(render: np.ndarray, mask: np.ndarray, photo: np.ndarray) -> float:
    """PSNR (dB) of a [0, 1] render against a uint8 photo inside ``mask``."""
    err = (render - photo.astype(np.float64) / 255.0)[mask]
    mse = float(np.mean(err**2)) if err.size else float("nan")
    return 10 * math.log10(1.0 / mse) if mse > 0 else float("inf")


def bootstrap_median(values, n: int = 2000, seed: int = 0) -> list[float]:
    """95 % percentile-bootstrap interval of the median of ``values``."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return [float("nan"), float("nan")]
    meds = np.median(np.random.default_rng(seed).choice(v, (n, len(v))), axis=1)
    return [round(float(x), 3) for x in np.percentile(meds, [2.5, 97.5])]


def landmark_stage(samples, cache: Path | None) -> list:
    """(sample, FaceFit) per face the default landmark stage finds (cached in ``cache``)."""
    if cache is not None and cache.is_file():
        with open(cache, "rb") as fh:
            done = pickle.load(fh)
        if [s.image_path.name for s, _ in done] == [s.image_path.name for s in samples[: len(done)]]:
            return done
    detector, regressor, model = FaceDetector(), default_regressor(), MorphableModel.from_dir()
    out = []
    for s in samples:
        marked = detect_and_landmark(read_image(s.image_path), detector, 1, s.box, regressor)
        if marked.detections:
            out.append((s, fit_detections(model, marked, FitConfig())[0]))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(cache, "wb") as fh:
            pickle.dump(out, fh)
    return out


def run_face(model, image, face, sample, cfgs, noise_sigma, rng) -> tuple[dict, dict]:
    """Every variant on one face: its record and its (render, mask) per variant. PSNRs are taken
    over the pixels every variant's photometric mask holds (clean and noisy fits alike), less any
    padding around the photo (:func:`face3d.crop.photo_extent`), which gets no noise either."""
    rec, renders, noisy_renders = {"image": sample.image_path.name, "yaw": sample.yaw}, {}, {}
    noise = rng.normal(0, noise_sigma, image.shape)
    padding = ~photo_mask(image)  # the photo, not the padding around it: that stays black
    noise[padding] = 0.0
    noisy = np.clip(image / 255.0 + noise, 0, 1)
    noisy = (noisy * 255 + 0.5).astype(np.uint8)
    for name, cfg in cfgs.items():
        refined, res = residual_face(model, image, face, cfg)
        renders[name] = render_appearance(model, res.fit, res, cfg)
        rec[f"{name}_ms"] = res.ms
        rec["noise_sigma"] = res.noise
        rec[f"{name}_residual_max_cm"] = float(res.residual.norm(dim=-1).max())
        rec[f"{name}_nme"] = nme(refined.fit.landmarks_fitted[0].cpu().numpy(), sample.landmarks)
        cam = refined.fit.landmark_points(model, face.landmark_offset, image=False)[0].cpu().numpy()
        err3d = landmark_errors_3d(cam, sample.landmarks_3d)
        rec[f"{name}_nme3d"] = float(err3d.mean())
        rec[f"{name}_err3d_groups"] = {g: float(err3d[list(ids)].mean()) for g, ids in GROUPS.items()}
        if noise_sigma > 0:
            _, res_n = residual_face(model, noisy, face, cfg)
            rec["noisy_noise_sigma"] = res_n.noise
            noisy_renders[name] = render_appearance(model, res_n.fit, res_n, cfg)
    common = np.all([m for _, m in [*renders.values(), *noisy_renders.values()]], 0) & ~padding
    rec["mask_px"] = int(common.sum())
    for name in cfgs:
        rec[f"{name}_psnr"] = psnr(renders[name][0], common, image)
        if name in noisy_renders:
            rec[f"{name}_noisy_psnr_vs_clean"] = psnr(noisy_renders[name][0], common, image)
            rec[f"{name}_noise_drop"] = rec[f"{name}_psnr"] - rec[f"{name}_noisy_psnr_vs_clean"]
    return rec, renders


def figure_rows(image: np.ndarray, renders: dict, size: int = 128) -> np.ndarray:
    """One row: photo | render per variant over the photo, and under it |error| heat maps."""
    import cv2

    masks = [m for _, m in renders.values()]
    ys, xs = np.nonzero(np.any(masks, 0))
    if len(ys) == 0:
        return np.zeros((2 * size, size * (1 + len(renders)), 3), np.uint8)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    photo = image.astype(np.float32) / 255.0
    top, bottom = [photo], [np.zeros_like(photo)]
    for img, mask in renders.values():
        top.append(np.where(mask[..., None], img, photo))
        err = np.abs(img - photo).mean(-1) * mask
        heat = cv2.applyColorMap((np.clip(err / 0.2, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
        bottom.append(heat[..., ::-1].astype(np.float32) / 255.0 * mask[..., None])

    def tile(a):
        return cv2.resize(np.ascontiguousarray(a[y0:y1, x0:x1]), (size, size), interpolation=cv2.INTER_AREA)

    rows = [np.concatenate([tile(a) for a in r], 1) for r in (top, bottom)]
    return (np.clip(np.concatenate(rows, 0), 0, 1) * 255 + 0.5).astype(np.uint8)


def summarise(records: list[dict], names: list[str]) -> dict:
    """Per variant: NME and 3D error per bin, median PSNR, gain over the first variant, noise drop, time."""
    out: dict = {"faces": len(records)}
    for name in names:
        res: dict = {
            "nme": bin_table([(r["yaw"], r[f"{name}_nme"]) for r in records]),
            "nme3d": bin_table([(r["yaw"], r[f"{name}_nme3d"]) for r in records]),
        }
        for key in ("psnr", "noise_drop", "noisy_psnr_vs_clean", "ms", "residual_max_cm"):
            vals = [r[f"{name}_{key}"] for r in records if f"{name}_{key}" in r]
            if vals:
                res[f"median_{key}"] = round(float(np.median(vals)), 3)
        gain = [r[f"{name}_psnr"] - r[f"{names[0]}_psnr"] for r in records]
        res["median_gain_db"], res["gain_ci95"] = round(float(np.median(gain)), 3), bootstrap_median(gain)
        res["err3d_groups_delta"] = {  # mean per part, minus the first variant's
            g: round(float(np.mean([r[f"{name}_err3d_groups"][g] - r[f"{names[0]}_err3d_groups"][g]
                                    for r in records])), 3) for g in GROUPS}  # fmt: skip
        drop = [r[f"{name}_noise_drop"] for r in records if f"{name}_noise_drop" in r]
        if drop:
            res["noise_drop_ci95"] = bootstrap_median(drop)
        out[name] = res
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--split", choices=("train", "heldout", "all"), default="heldout")
    ap.add_argument("--per-bin", type=int, default=11, help="AFLW images per |yaw| bin")
    ap.add_argument("--noise", type=float, default=0.1, help="Gaussian pixel noise sigma (0: skip)")
    ap.add_argument("--steps", type=int, default=None, help="steps of every variant (default: the config's)")
    ap.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                    help="NAME=PARAM[,FIELD=VALUE...] (the first is the baseline of the gain)")  # fmt: skip
    ap.add_argument("--fits-cache", default=None, help="pickle of the landmark stage's fits (reused)")
    ap.add_argument("--figure-faces", type=int, default=4)
    ap.add_argument("--out", default="out/bench_residual.json")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start, load0 = time.perf_counter(), os.getloadavg()[0]
    cfgs = dict(parse_variant(v, args.steps) for v in args.variants)
    samples = stratified(select_split(load_aflw(args.data), args.split), args.per_bin)
    faces = landmark_stage(samples, Path(args.fits_cache) if args.fits_cache else None)
    model = MorphableModel.from_dir()
    rng = np.random.default_rng(0)
    records, rows = [], []
    for i, (sample, face) in enumerate(faces):
        image = read_image(sample.image_path)
        rec, renders = run_face(model, image, face, sample, cfgs, args.noise, rng)
        records.append(rec)
        if len(rows) < args.figure_faces and i % max(1, len(faces) // max(args.figure_faces, 1)) == 0:
            rows.append(figure_rows(image, renders))
        print(f"[{i + 1}/{len(faces)}] {sample.image_path.name} yaw {sample.yaw:.0f}: " + ", ".join(
            f"{k} {rec[k + '_psnr']:.2f} dB {rec[k + '_nme']:.2f}/{rec[k + '_nme3d']:.2f} %" for k in cfgs
        ), flush=True)  # fmt: skip
    out = Path(args.out)
    if rows:
        write_image(out.with_suffix(".png"), np.concatenate(rows, 0))
    summary = {
        "command": " ".join(sys.argv),
        "config": {k: str(v) for k, v in vars(args).items()},
        "variants": {k: str(v) for k, v in cfgs.items()},
        "results": summarise(records, list(cfgs)),
        "seconds": round(time.perf_counter() - t_start, 1),
        "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "records": records,
    }
    atomic_write_json(out, summary)
    for k, v in summary["results"].items():
        print(k, v)
    print(f"{summary['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
