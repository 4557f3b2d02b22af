"""Paired differences between methods of a finished ``face3d compare`` run, per |yaw| bin.

    .venv/bin/python scripts/bench/compare_paired.py out/compare/aflw_v19 --out paired.json

For every other method and metric: the mean over (input, target) rows both methods have of
``base - other``, with a seeded bootstrap 95 % interval (rows resampled). An interval that excludes
0 is a win or a loss for ``base``; one that straddles 0 is a tie. Reads ``records/*.json``; writes
JSON and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from editing.compare.metrics import bin_name, bootstrap_ci
from face3d.eval import BIN_NAMES
from face3d.io import atomic_write_json

METRICS = ("p_target_gain", "hit", "identity_distance", "completeness", "speckles", "changed_bg")


def paired(run: Path, base: str, metrics=METRICS, seed: int = 0) -> dict:
    """other method -> metric -> bin (and "all") -> {"mean", "low", "high", "n"} of base - other."""
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for path in sorted((run / "records").glob("*.json")):
        for r in json.loads(path.read_text()):
            rows.setdefault((r["input"], r["target"]), {})[r["method"]] = r
    methods = sorted({m for by in rows.values() for m in by} - {base})
    out: dict = {}
    for other in methods:
        for metric in metrics:
            diffs: dict[str, list[float]] = {b: [] for b in ("all", *BIN_NAMES)}
            for by in rows.values():
                a, b = by.get(base), by.get(other)
                if a is None or b is None or a.get(metric) is None or b.get(metric) is None:
                    continue
                d = float(a[metric]) - float(b[metric])
                diffs["all"].append(d)
                diffs.setdefault(bin_name(a.get("yaw")), []).append(d)
            cells = {}
            for name, values in diffs.items():
                mean, low, high, n = bootstrap_ci(values, seed=seed)
                cells[name] = {"mean": mean, "low": low, "high": high, "n": n}
            out.setdefault(other, {})[metric] = cells
    return out


def markdown(result: dict, base: str) -> str:
    lines = [
        f"| {base} minus | metric | " + " | ".join(BIN_NAMES) + " |",
        "|---|---|" + "---:|" * len(BIN_NAMES),
    ]
    for other, by_metric in result.items():
        for metric, cells in by_metric.items():
            shown = [
                f"{c['mean']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]" if c["n"] else "–"
                for c in (cells.get(b, {"n": 0}) for b in BIN_NAMES)
            ]
            lines.append(f"| {other} | {metric} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a face3d compare output folder")
    ap.add_argument("--base", default="3d")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = ap.parse_args(argv)
    if not (args.run / "records").is_dir():
        print(f"error: {args.run} has no records/ folder (not a face3d compare output)", file=sys.stderr)
        return 2
    result = paired(args.run, args.base)
    atomic_write_json(args.out, {"run": str(args.run), "base": args.base, "paired": result})
    print(markdown(result, args.base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
