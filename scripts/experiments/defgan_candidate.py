"""Does a candidate 2D DefGAN bundle edit? ``face3d compare --methods 2d,3d`` with the candidate in
place of ``assets/defgan``, on AFLW2000-3D dev held-out faces of one |yaw| range.

    .venv/bin/python scripts/experiments/defgan_candidate.py --bundle runs/defgan_distill/generator \\
        --out out/defgan_candidate --n 20 --yaw 0 30 --threads 1

Writes the compare folder (records, outputs, per-face grids, report) and ``<out>/gains.json``: per
method and target, the mean FER target-probability gain over the faces, with n.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def pick(aflw: Path, n: int, lo: float, hi: float) -> list[Path]:
    """``n`` held-out images with ``lo <= |yaw| < hi``, spread evenly over the sorted names."""
    import numpy as np

    from face3d.eval.aflw import load_aflw, select_split

    held = sorted(
        (s for s in select_split(load_aflw(aflw), "heldout") if lo <= abs(s.yaw) < hi),
        key=lambda s: s.image_path.name,
    )
    idx = np.unique(np.round(np.linspace(0, len(held) - 1, min(n, len(held)))).astype(int))
    return [held[i].image_path for i in idx]


def gains(out: Path) -> dict:
    import numpy as np

    rows: dict[str, list[float]] = {}
    for f in sorted((out / "records").glob("*.json")):
        data = json.loads(f.read_text())
        for r in data if isinstance(data, list) else data.get("records", []):
            if r.get("p_target_gain") is not None:
                rows.setdefault(f"{r['method']}/{r['target']}", []).append(r["p_target_gain"])
    return {k: {"mean": float(np.mean(v)), "n": len(v)} for k, v in sorted(rows.items())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, required=True, help="candidate generator folder (kind 2d)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--aflw", type=Path, default=Path("../shared/data/aflw2000-3d-dev"))
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--yaw", type=float, nargs=2, default=(0.0, 30.0), help="|yaw| range, degrees")
    ap.add_argument("--expressions", default="happy,surprise")
    ap.add_argument("--methods", default="2d,3d")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    import editing.compare.methods as methods_mod
    from editing.api import EditContext
    from editing.compare.run import CompareOptions, aflw_yaws, compare_folder
    from editing.expressions import ARKIT_NAMES, parse_expressions
    from editing.gan.checkpoint import load_generators

    torch.set_num_threads(max(1, args.threads))
    candidate = load_generators(args.bundle)
    shipped = methods_mod.shipped_generators
    methods_mod.shipped_generators = lambda kind, required=False: (
        candidate if kind == "2d" else shipped(kind, required)
    )
    images = [str(p) for p in pick(args.aflw, args.n, *args.yaw)]
    specs = parse_expressions(args.expressions, ARKIT_NAMES)
    ctx = EditContext.from_dir(refine="none")
    options = CompareOptions(yaw_truth=aflw_yaws(images), resume=True, progress=False)
    compare_folder(images, args.out, specs, args.methods.split(","), ctx, options)
    result = {"bundle": str(args.bundle), "yaw": list(args.yaw), "gains": gains(args.out)}
    (args.out / "gains.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
