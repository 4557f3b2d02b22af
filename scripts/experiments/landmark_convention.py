"""How well the regressor's landmark model explains AFLW2000-3D's labels, with and without a
landmark-convention offset (``face3d.train.convention``).

    .venv/bin/python scripts/experiments/landmark_convention.py --data ../shared/data/aflw2000-3d-dev \\
        --out out/landmark_convention.json

Calibrates an offset on the train half of the dev set, then fits every held-out face (pose, scale,
expression; identity at the mean face) with the offset held at zero, at the calibrated one and at
the one stored in ``--weights``, and writes the NME (%) of those fits per |yaw| bin: the part of
the error no network trained through this landmark model can remove.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

GROUPS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48)}
GROUPS["mouth"] = range(48, 68)


def _network_errors(net, crops, landmarks, bins) -> dict:
    """The network's own landmarks on unaugmented crops (one crop, no flip): per |yaw| bin the
    mean per-point error of each landmark group (% of sqrt(w h) of the ground-truth box) and, at
    [60,90], the mean signed x error of the 17 jaw points toward the side the face turns to."""
    import torch

    from face3d.eval.metrics import BIN_NAMES
    from face3d.regress.network import normalise

    with torch.no_grad():
        pred = net.eval()(normalise(torch.from_numpy(crops)))["landmarks"].double().numpy()
    gt = np.asarray(landmarks, dtype=np.float64)
    norm = np.sqrt(np.prod(gt.max(1) - gt.min(1), axis=-1))[:, None]
    err = np.linalg.norm(pred - gt, axis=-1) / norm * 100
    out = {}
    for b in range(3):
        m = bins == b
        if m.any():
            out[BIN_NAMES[b]] = {g: round(float(err[m][:, list(r)].mean()), 2) for g, r in GROUPS.items()}
    m = bins == 2
    if m.any():
        # the face turns toward image +x when the nose lies right of the landmarks' centre
        side = np.sign(gt[m, 30, 0] - gt[m].mean(1)[:, 0])[:, None]
        dx = (pred[m, :17, 0] - gt[m, :17, 0]) / norm[m] * 100 * side
        out["jaw_dx_toward_turn_[60,90]"] = [round(float(v), 1) for v in dx.mean(0)]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev", help="AFLW2000-3D dev folder")
    ap.add_argument("--weights", default=None, help="regressor folder (default assets/regressor)")
    ap.add_argument("--iterations", type=int, default=800, help="Adam steps of each fit")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--out", default="out/landmark_convention.json")
    args = ap.parse_args(argv)

    import torch

    from face3d.eval.aflw import load_aflw, select_split
    from face3d.eval.aflw_crops import NO_AUG, AFLWCrops
    from face3d.eval.metrics import BIN_NAMES, nme
    from face3d.io import atomic_write_json
    from face3d.regress.network import RegressorNet
    from face3d.train.convention import calibrate_offset, fit_faces

    torch.set_num_threads(args.threads)
    samples = load_aflw(args.data)
    if not samples:
        print(f"landmark_convention: no AFLW2000-3D images in {args.data}", file=sys.stderr)
        return 2
    net = RegressorNet.from_pretrained(args.weights)
    cfg = net.config

    def crops(split):
        data = AFLWCrops(select_split(samples, split), cfg.size, cfg.crop_scale, NO_AUG)
        images, points, _ = data.unaugmented()
        return images, points, data.bins

    t0 = time.perf_counter()
    train_x, train_y, _ = crops("train")
    offset = calibrate_offset(net, train_x, train_y, args.iterations)
    print(f"calibrated on {len(train_x)} train-half faces in {time.perf_counter() - t0:.0f} s")
    held_x, held_y, bins = crops("heldout")
    results = {}
    for name, off in (("no_offset", torch.zeros(68, 3)), ("calibrated", offset), ("weights", net.lm_offset)):
        _, fitted = fit_faces(net, held_x, held_y, off, args.iterations)
        err = nme(fitted, torch.as_tensor(held_y, dtype=torch.float32)).numpy()
        present = [b for b in range(3) if (bins == b).any()]
        per_bin = {BIN_NAMES[b]: round(float(err[bins == b].mean()), 3) for b in present}
        results[name] = {**per_bin, "balanced": round(float(np.mean(list(per_bin.values()))), 3)}
        print(f"held-out fit, offset {name}: {results[name]}")
    network = _network_errors(net, held_x, held_y, bins)
    print(f"network alone (one crop), held-out: {network}")
    size = offset.norm(dim=-1)
    summary = {
        "data": str(args.data),
        "weights": str(args.weights or "assets/regressor"),
        "command": " ".join(sys.argv),
        "train_faces": len(train_x),
        "heldout_faces": len(held_x),
        "offset_cm": {"mean": round(float(size.mean()), 3), "max": round(float(size.max()), 3)},
        "heldout_fit_nme": results,
        "heldout_network": network,
    }
    atomic_write_json(args.out, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
