"""Ablation of the residual geometry: linear only / + free offsets / + conv reparametrisation.

    .venv/bin/python scripts/bench/bench_residual.py --out out/bench_residual.json

On a stratified AFLW2000-3D subset (protocol box, the default landmark stage: dlib's points near
frontal, the regression network's beyond 30 degrees of yaw; landmark fit) and an LFW subset
(detected), every variant fits albedo x SH shading (and, but for ``linear``, a residual) to the
photo; then it fits again to the photo with Gaussian noise (``--noise``, same landmark fit, so
only the photometric stage sees the noise) and is scored against the CLEAN photo. Reported:
landmark NME per |yaw| bin (AFLW; the residual's anatomical landmarks vs ground truth), median
PSNR of the re-render inside the photometric mask, the same under noise, and time per face.
A figure (photo | linear | free | conv, with error heat maps) goes beside the JSON.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from face3d.detect import FaceDetector
from face3d.eval.aflw import load_aflw, stratified
from face3d.eval.metrics import bin_table, nme
from face3d.fit import FitConfig
from face3d.fit.pipeline import default_regressor, detect_and_landmark, fit_detections
from face3d.fit.residual import ResidualConfig, fit_residual, render_appearance
from face3d.io import atomic_write_json, read_image, write_image
from face3d.model import MorphableModel

VARIANTS = {"linear": "none", "free": "free", "conv": "conv"}


def psnr(render: np.ndarray, mask: np.ndarray, photo: np.ndarray) -> float:
    """PSNR (dB) of a [0, 1] render against a uint8 photo inside ``mask``."""
    err = (render - photo.astype(np.float64) / 255.0)[mask]
    mse = float(np.mean(err**2)) if err.size else float("nan")
    return 10 * math.log10(1.0 / mse) if mse > 0 else float("inf")


def lfw_images(folder: Path, n: int) -> list[Path]:
    """The first image of every k-th person (sorted), n in all."""
    people = sorted(p for p in folder.iterdir() if p.is_dir())
    step = max(1, len(people) // max(n, 1))
    out = []
    for p in people[::step][:n]:
        imgs = sorted(p.glob("*.jpg"))
        if imgs:
            out.append(imgs[0])
    return out


def run_face(model, image, fit, cfgs, noise_sigma, rng, landmark_offset=None) -> tuple[dict, dict]:
    """``landmark_offset``: the fit's landmark convention (the regressor's, None for dlib's points)."""
    import torch

    from face3d.camera import project

    offset = torch.zeros(68, 3) if landmark_offset is None else torch.as_tensor(landmark_offset)
    offset = offset.to(fit.rotation.dtype)
    rec, renders = {}, {}
    noisy = np.clip(image / 255.0 + rng.normal(0, noise_sigma, image.shape), 0, 1)
    noisy = (noisy * 255 + 0.5).astype(np.uint8)
    for name, cfg in cfgs.items():
        res = fit_residual(model, image, fit, cfg, landmark_offset=landmark_offset)
        refined = fit.with_residual(res.residual)
        img, mask = render_appearance(model, refined, res, cfg)
        rec[f"{name}_psnr"] = psnr(img, mask, image)
        rec[f"{name}_ms"] = res.ms
        rec[f"{name}_residual_max_cm"] = float(res.residual.norm(dim=-1).max())
        cam = refined.vertices_cam(model)[:, model.landmark_ids] + offset @ refined.rotation.transpose(1, 2)
        rec[f"{name}_landmarks"] = project(cam, refined.intrinsics)[0].tolist()
        renders[name] = (img, mask)
        if noise_sigma > 0:
            res_n = fit_residual(model, noisy, fit, cfg, landmark_offset=landmark_offset)
            img_n, mask_n = render_appearance(model, fit.with_residual(res_n.residual), res_n, cfg)
            rec[f"{name}_noisy_psnr_vs_clean"] = psnr(img_n, mask_n, image)
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


def summarise(records: list[dict]) -> dict:
    out = {"faces": len(records)}
    aflw = [r for r in records if r["set"] == "aflw"]
    for name in VARIANTS:
        res = {}
        if aflw:
            res["nme"] = bin_table([(r["yaw"], r.get(f"{name}nme")) for r in aflw])
        for key in ("psnr", "noisy_psnr_vs_clean", "ms", "residual_max_cm"):
            for subset, recs in (
                ("all", records),
                ("aflw", aflw),
                ("lfw", [r for r in records if r["set"] == "lfw"]),
            ):
                vals = [r[f"{name}_{key}"] for r in recs if f"{name}_{key}" in r]
                if vals:
                    res[f"median_{key}_{subset}"] = round(float(np.median(vals)), 3)
        out[name] = res
    if aflw:
        out["landmark_fit_nme"] = bin_table([(r["yaw"], r["fit_nme"]) for r in aflw])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--lfw-dir", default="../shared/data/lfw")
    ap.add_argument("--per-bin", type=int, default=3, help="AFLW images per |yaw| bin")
    ap.add_argument("--lfw", type=int, default=6, help="LFW images")
    ap.add_argument("--noise", type=float, default=0.1, help="Gaussian pixel noise sigma (0: skip)")
    ap.add_argument("--steps", type=int, default=ResidualConfig().steps)
    ap.add_argument("--figure-faces", type=int, default=4)
    ap.add_argument("--out", default="out/bench_residual.json")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    model = MorphableModel.from_dir()
    detector = FaceDetector()
    regressor = default_regressor()  # the default `face3d fit` landmark stage: dlib + regressor
    cfgs = {k: ResidualConfig(parametrisation=v, steps=args.steps) for k, v in VARIANTS.items()}
    rng = np.random.default_rng(0)
    jobs = [("aflw", s.image_path, s) for s in stratified(load_aflw(args.data), args.per_bin)]
    if args.lfw > 0 and Path(args.lfw_dir).is_dir():
        jobs += [("lfw", p, None) for p in lfw_images(Path(args.lfw_dir), args.lfw)]
    records, rows = [], []
    for i, (subset, path, sample) in enumerate(jobs):
        image = read_image(path)
        box = sample.box if sample is not None else None
        marked = detect_and_landmark(image, detector, 1, box, regressor)
        if not marked.detections:
            print(f"[{i + 1}/{len(jobs)}] {path.name}: no face", file=sys.stderr)
            continue
        face = fit_detections(model, marked, FitConfig())[0]
        fit = face.fit
        rec, renders = run_face(model, image, fit, cfgs, args.noise, rng, face.landmark_offset)
        rec.update({"set": subset, "image": path.name})
        if sample is not None:
            rec["yaw"], rec["fit_nme"] = sample.yaw, nme(fit.landmarks_fitted[0].numpy(), sample.landmarks)
            for name in VARIANTS:
                rec[f"{name}nme"] = nme(np.asarray(rec[f"{name}_landmarks"]), sample.landmarks)
        records.append(rec)
        if len(rows) < args.figure_faces:
            rows.append(figure_rows(image, renders))
        print(
            f"[{i + 1}/{len(jobs)}] {path.name}: "
            + ", ".join(f"{k} {rec[k + '_psnr']:.2f} dB" for k in VARIANTS)
        )
    out = Path(args.out)
    if rows:
        write_image(out.with_suffix(".png"), np.concatenate(rows, 0))
    summary = {
        "command": " ".join(sys.argv),
        "config": {k: str(v) for k, v in vars(args).items()},
        "variants": {
            k: f"ResidualConfig(parametrisation={v!r}, steps={args.steps})" for k, v in VARIANTS.items()
        },
        "results": summarise(records),
        "seconds": round(time.perf_counter() - t_start, 1),
        "records": [{k: v for k, v in r.items() if not k.endswith("_landmarks")} for r in records],
    }
    atomic_write_json(out, summary)
    print({k: v for k, v in summary["results"].items()})
    print(f"{summary['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
