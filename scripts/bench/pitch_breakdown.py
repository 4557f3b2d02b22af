"""NME per |pitch| bin from benchmark record streams (``bench_regressor.py`` / ``bench_fit.py``
``.jsonl``), one column per stream; no model is run.

    .venv/bin/python scripts/bench/pitch_breakdown.py out/bench_regressor_heldout_v14_profile.jsonl \\
        --key regressor --out out/pitch_breakdown.json

The streams name their images; the pitch is AFLW2000-3D's label (``Pose_Para``) read from
``--data``. Writes, per stream, the number of images, mean and median NME (%) per |pitch| bin and
each bin's share of the summed error, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from face3d.argtypes import float_list


def pitch_table(records: list[dict], pitch: dict[str, float], key: str, edges: list[float]) -> dict:
    """``{"[lo,hi)": {"n", "nme", "median_nme", "share"}}`` of ``records[key]`` per |pitch| bin
    (``edges`` ascending, degrees; the last bin is open). Records without ``key`` are skipped."""
    vals = [(abs(pitch[r["image"]]), float(r[key])) for r in records if r.get(key) is not None]
    if not vals:
        return {}
    p, e = np.array(vals).T
    total = float(e.sum())
    out = {}
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else np.inf
        m = (p >= lo) & (p < hi)
        name = f"[{lo:g},{hi:g})" if np.isfinite(hi) else f"[{lo:g},inf)"
        out[name] = {
            "n": int(m.sum()),
            "nme": round(float(e[m].mean()), 3) if m.any() else None,
            "median_nme": round(float(np.median(e[m])), 3) if m.any() else None,
            "share": round(float(e[m].sum()) / total, 3) if total > 0 else None,
        }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", nargs="+", help="benchmark .jsonl streams")
    ap.add_argument("--key", default="regressor", help="the NME field (bench_fit: default, regressor_fit)")
    ap.add_argument(
        "--edges",
        type=float_list(0, None),
        default=[0.0, 15.0, 30.0, 45.0, 60.0],
        help="ascending |pitch| bin edges, degrees",
    )
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev", help="AFLW2000-3D dev folder")
    ap.add_argument("--out", default="out/pitch_breakdown.json")
    args = ap.parse_args(argv)
    if list(args.edges) != sorted(args.edges):
        ap.error("--edges: must be ascending")

    from face3d.eval.aflw import load_aflw
    from face3d.io import atomic_write_json

    streams = {}
    for name in args.records:
        path = Path(name)
        if not path.is_file():
            print(f"pitch_breakdown: {path}: no such file", file=sys.stderr)
            return 2
        streams[name] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    pitch = {s.image_path.name: s.pitch for s in load_aflw(args.data)}
    if not pitch:
        print(f"pitch_breakdown: no AFLW2000-3D images in {args.data}", file=sys.stderr)
        return 2
    unknown = {r["image"] for recs in streams.values() for r in recs} - pitch.keys()
    if unknown:
        example = min(unknown)
        print(f"pitch_breakdown: {len(unknown)} images not in {args.data}, e.g. {example}", file=sys.stderr)
        return 2
    results = {name: pitch_table(recs, pitch, args.key, list(args.edges)) for name, recs in streams.items()}
    atomic_write_json(args.out, {"key": args.key, "data": args.data, "results": results})
    for name, table in results.items():
        cells = "  ".join(f"{b} {t['nme']} (n={t['n']})" for b, t in table.items())
        print(f"{Path(name).name}: {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
