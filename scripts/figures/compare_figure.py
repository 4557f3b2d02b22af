"""A labelled figure from a ``face3d compare`` output folder: chosen inputs' face grids stacked,
with the column (input | methods) and row (target) names drawn on.

    .venv/bin/python scripts/figures/compare_figure.py out/compare/aflw_heldout image00123 image00456 \
        --out docs/compare_grid.png

Stems default to one input per |yaw| bin (the first record of each bin, sorted by name).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from editing.compare.report import BIN_NAMES, bin_name
from face3d.io import read_image, write_image


def _label(tile_w: int, names: list[str], height: int = 22) -> np.ndarray:
    import cv2

    bar = np.full((height, tile_w * len(names), 3), 255, np.uint8)
    for i, name in enumerate(names):
        cv2.putText(bar, name, (i * tile_w + 6, height - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    return bar


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a face3d compare --out folder")
    ap.add_argument("stems", nargs="*", help="input stems (default: one per |yaw| bin)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    summary = args.folder / "summary.json"
    if not summary.is_file():
        print(f"compare_figure: error: {summary} not found (run face3d compare first)", file=sys.stderr)
        return 2
    info = json.loads(summary.read_text())
    methods, targets = info["methods"], info["expressions"]
    records = {p.stem: json.loads(p.read_text()) for p in sorted((args.folder / "records").glob("*.json"))}
    stems = list(args.stems)
    if not stems:
        for b in BIN_NAMES:
            stem = next((s for s, r in records.items() if r and bin_name(r[0].get("yaw")) == b), None)
            if stem:
                stems.append(stem)
    if not stems or any(s not in records for s in stems):
        print(
            f"compare_figure: error: no records for {[s for s in stems if s not in records]}", file=sys.stderr
        )
        return 2
    panels = []
    for stem in stems:
        grid = read_image(args.folder / "grids" / f"{stem}.png")
        tile = grid.shape[1] // (1 + len(methods))
        yaw = records[stem][0].get("yaw")
        head = _label(tile, [f"yaw {yaw:+.0f}" if yaw is not None else "input"] + methods)
        rows = [np.rot90(_label(grid.shape[0] // len(targets), [t])) for t in targets]
        side = np.ascontiguousarray(np.concatenate(rows, axis=0))
        body = np.concatenate([side, grid], axis=1)
        head = np.concatenate([np.full((head.shape[0], side.shape[1], 3), 255, np.uint8), head], axis=1)
        panels.append(np.concatenate([head, body], axis=0))
    width = max(p.shape[1] for p in panels)
    panels = [np.pad(p, ((0, 6), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in panels]
    write_image(args.out, np.concatenate(panels, axis=0))
    print(f"wrote {args.out} ({len(panels)} inputs: {', '.join(stems)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
