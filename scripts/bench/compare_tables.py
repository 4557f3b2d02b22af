"""The docs' comparison tables (docs/benchmarks.md) from a finished ``face3d compare`` run.

    .venv/bin/python scripts/bench/compare_tables.py out/compare/aflw_v23

Reads the run's ``summary.json``, ``paired.json`` (``compare_paired.py``) and ``records/*.json``
and prints, in Markdown: the per-method table (identity, FER gain and hit, re-fit error,
completeness, speckles, pixels changed outside the 3D region, KID), pooled completeness, the
paired differences ``3d`` minus each 2D method and the FER gain per target, for the |yaw| bins
with at least ``--min-n`` rows per method.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from editing.compare.metrics import bin_name
from face3d.eval import BIN_NAMES

TWO_D = ("2d", "2d-warp")


def _ci(cell: dict, fmt: str = "{:.2f}", sign: bool = False) -> str:
    f = fmt.replace("{:", "{:+") if sign else fmt
    return f"{f.format(cell['mean'])} [{f.format(cell['low'])}, {f.format(cell['high'])}]"


def shown_bins(summary: dict, min_n: int) -> list[str]:
    """The |yaw| bins with at least ``min_n`` rows for every method."""
    m = summary["metrics"]["identity_distance"]
    return [b for b in BIN_NAMES if all(m[me].get(b, {}).get("n", 0) >= min_n for me in m)]


def method_table(summary: dict, methods: list[str], bins: list[str]) -> list[str]:
    m, kid = summary["metrics"], summary["kid_by_bin"]
    out = [
        "| \\|yaw\\| | method | n | identity ↓ | FER p(target) gain ↑ | FER hit ↑ | re-fit MAE ↓ "
        "| completeness ↑ | speckles ↓ | changed outside 3D region ↓ | KID ×100 (FER) ↓ |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in bins:
        for me in methods:
            k = kid.get(b, {}).get(me)
            cells = [
                b, me, str(m["identity_distance"][me][b]["n"]), _ci(m["identity_distance"][me][b]),
                _ci(m["p_target_gain"][me][b], "{:.3f}", sign=True), f"{100 * m['hit'][me][b]['mean']:.0f} %",
                f"{m['refit_mae'][me][b]['mean']:.3f}", _ci(m["completeness"][me][b]),
                f"{m['speckles'][me][b]['mean']:.1f}", f"{100 * m['changed_bg'][me][b]['mean']:.1f} %",
                f"{100 * k['kid_fer']:.1f} ± {100 * k['kid_fer_std']:.1f}" if k else "–",
            ]  # fmt: skip
            out.append("| " + " | ".join(cells) + " |")
    return out


def pooled_table(summary: dict, methods: list[str], bins: list[str]) -> list[str]:
    pooled = summary["completeness_pooled"]
    out = [
        "| \\|yaw\\| | method | happy: median / pooled [CI] | surprise: median / pooled [CI] |",
        "|---|---|---:|---:|",
    ]
    for b in bins:
        for me in methods:
            cells = [b, me]
            for t in ("happy", "surprise"):
                c = pooled[me][b][t]
                cells.append(f"{c['median']:.2f} / {c['pooled']:.2f} [{c['low']:.2f}, {c['high']:.2f}]")
            out.append("| " + " | ".join(cells) + " |")
    return out


def paired_table(paired: dict, bins: list[str]) -> list[str]:
    out = [
        f"| {paired['base']} minus | metric | " + " | ".join(bins) + " |",
        "|---|---|" + "---:|" * len(bins),
    ]
    for other in TWO_D:
        for metric in ("p_target_gain", "identity_distance", "completeness", "speckles"):
            cells = [_ci(paired["paired"][other][metric][b], "{:.3f}", sign=True) for b in bins]
            out.append(f"| {other} | {metric} | " + " | ".join(cells) + " |")
    return out


def per_target_table(run: Path, bins: list[str], methods=("3d", *TWO_D)) -> list[str]:
    sums: dict = {}
    for path in sorted((run / "records").glob("*.json")):
        for r in json.loads(path.read_text()):
            if r.get("p_target_gain") is not None:
                key = (r["target"], bin_name(r.get("yaw")), r["method"])
                sums.setdefault(key, []).append(float(r["p_target_gain"]))
    targets = sorted({k[0] for k in sums})
    out = ["| target | " + " | ".join(bins) + " |", "|---|" + "---:|" * len(bins)]
    for t in targets:
        cells = []
        for b in bins:
            vals = [sums.get((t, b, me)) for me in methods]
            cells.append(" / ".join(f"{sum(v) / len(v):.3f}" if v else "–" for v in vals))
        out.append(f"| {t} | " + " | ".join(cells) + " |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--min-n", type=int, default=30, help="leave out bins with fewer rows per method")
    args = ap.parse_args(argv)
    summary = json.loads((args.run / "summary.json").read_text())
    methods, bins = summary["methods"], shown_bins(summary, args.min_n)
    blocks = [method_table(summary, methods, bins), pooled_table(summary, methods, bins)]
    if (args.run / "paired.json").is_file():
        blocks.append(paired_table(json.loads((args.run / "paired.json").read_text()), bins))
    blocks.append(per_target_table(args.run, bins))
    print("\n\n".join("\n".join(b) for b in blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
