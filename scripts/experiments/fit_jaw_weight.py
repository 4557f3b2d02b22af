"""How much the 3D fit trusts the regression network's jaw points (``FitConfig.regressor_jaw_weight``).

    .venv/bin/python scripts/experiments/fit_jaw_weight.py --split train \\
        --out out/fit_jaw_weight_train.json
    .venv/bin/python scripts/experiments/fit_jaw_weight.py --split heldout \\
        --out out/fit_jaw_weight_heldout.json

Protocol mode (the ground-truth 68-point box): the shipped network regresses every AFLW2000-3D
image of the split once (default test-time augmentation), then its landmarks are fitted as
``face3d fit`` fits them (:meth:`FitConfig.for_source` ``"regressor"``: no silhouette, the
network's landmark convention) with each ``--weights`` value as the jaw weight. Writes the NME (%)
of the fitted landmarks per |yaw| bin for each, and of the network's own points. Choose on
``--split train`` (the network was fine-tuned on it), report on ``heldout``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import torch
from tqdm import tqdm

from face3d.argtypes import float_list
from face3d.eval.aflw import SPLITS, select_split


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--split", default="train", choices=SPLITS)
    ap.add_argument("--per-bin", type=int, default=None, help="at most N images per yaw bin (default all)")
    ap.add_argument("--weights", type=float_list(0), default="0.6,1,1.5,2", help="comma list of jaw weights")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="out/fit_jaw_weight.json")
    args = ap.parse_args(argv)

    from face3d.eval.aflw import load_aflw, stratified
    from face3d.eval.metrics import bin_line, bin_table, nme
    from face3d.fit import FitConfig
    from face3d.fit.landmark_fit import fit_landmarks
    from face3d.fit.pipeline import default_regressor
    from face3d.io import atomic_write_json, read_image
    from face3d.model import MorphableModel

    samples = stratified(select_split(load_aflw(args.data), args.split), args.per_bin)
    regressor = default_regressor()
    if not samples or regressor is None:
        print("fit_jaw_weight: needs the AFLW2000-3D dev set and the shipped regressor", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    model = MorphableModel.from_dir()
    network: list = []
    fitted: dict[float, list] = {w: [] for w in args.weights}
    for s in tqdm(samples, desc="fit_jaw_weight"):
        image = read_image(s.image_path)
        reg = regressor.predict(image, s.box)
        network.append((s.yaw, nme(reg.landmarks, s.landmarks)))
        targets = torch.as_tensor(reg.landmarks[None], dtype=torch.float64)
        offset = torch.as_tensor(reg.landmark_offset)
        for w in args.weights:
            cfg = replace(FitConfig(), regressor_jaw_weight=w).for_source("regressor")
            fit = fit_landmarks(model, targets, image.shape[:2], cfg, landmark_offset=offset)
            fitted[w].append((s.yaw, nme(fit.landmarks_fitted[0].numpy(), s.landmarks)))
    out = {
        "split": args.split,
        "images": len(samples),
        "network": bin_table(network),
        "fitted": {f"{w:g}": bin_table(v) for w, v in fitted.items()},
    }
    for name, table in [("network", out["network"]), *((f"jaw {w}", t) for w, t in out["fitted"].items())]:
        print(f"{name:>10}: {bin_line(table)}")
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
