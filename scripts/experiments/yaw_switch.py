"""The default pipeline's dlib/regressor switch re-scored at other |yaw| thresholds, from a
``scripts/bench/bench_fit.py`` record stream (no fitting is rerun).

    .venv/bin/python scripts/experiments/yaw_switch.py out/bench_fit_heldout_v4_auto.jsonl \\
        --out out/yaw_switch_auto.json

Per image the stream holds the regressor's yaw and the NME of dlib + 3D fit and of regressor +
3D fit; the default pipeline takes dlib's fit while the regressor's |yaw| is below the threshold.
Writes, per mode and threshold, the mean NME (%) per |yaw| bin and their balanced mean.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", help="bench_fit.py's <out>.jsonl")
    ap.add_argument("--thresholds", default="0,15,20,25,30,35,40", help="comma-separated degrees")
    ap.add_argument("--out", default="out/yaw_switch.json")
    args = ap.parse_args(argv)

    from face3d.eval.metrics import BIN_NAMES, yaw_bin
    from face3d.io import atomic_write_json

    path = Path(args.records)
    if not path.is_file():
        print(f"yaw_switch: {path}: no such file", file=sys.stderr)
        return 2
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    recs = [r for r in recs if r.get("regressor_fit") is not None and r.get("dlib_fit") is not None]
    if not recs:
        print(f"yaw_switch: {path}: no image with both fits", file=sys.stderr)
        return 2
    out: dict = {}
    for mode in sorted({r.get("mode", "protocol") for r in recs}):
        rows = [r for r in recs if r.get("mode", "protocol") == mode]
        res = {}
        for t in (float(v) for v in args.thresholds.split(",")):
            per = [[], [], []]
            for r in rows:
                dlib = r.get("regressor_yaw") is not None and abs(r["regressor_yaw"]) < t
                dlib = dlib and not r.get("regressor_turns")  # turned faces always take the regressor
                per[yaw_bin(r["yaw"])].append(r["dlib_fit"] if dlib else r["regressor_fit"])
            means = {BIN_NAMES[b]: round(float(np.mean(v)), 2) for b, v in enumerate(per) if v}
            res[f"{t:g}"] = {**means, "balanced": round(float(np.mean(list(means.values()))), 2)}
            print(f"{mode} {t:>4g} deg: " + "  ".join(f"{k} {v:.2f}" for k, v in res[f"{t:g}"].items()))
        out[mode] = res
    atomic_write_json(args.out, {"records": str(path), "images": len(recs), "results": out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
