"""The README's mouth grid: held-out open mouths closed and reopened, the fill versus the generator.

    .venv/bin/python scripts/figures/mouth_cycle_figure.py --bench out/bench_mouth_cycle.jsonl \\
        --out docs/mouth_cycle.png

Per row one face of the benchmark's stream (the two with the widest drawn interior in each |yaw|
bin): the photo closed to ``neutral`` (the cycle's input) | reopened with the warp and the hand-made
fill (``--refine none``) | reopened with the texture generator (``--generator``) | the real photo.
Crops of twice the mouth width at full resolution, each pixel drawn as a block.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch


def pick(rows: list[dict], per_bin: int) -> list[dict]:
    from editing.compare.metrics import bin_name
    from face3d.eval.metrics import BIN_NAMES

    out = []
    for b in BIN_NAMES:
        rs = sorted((r for r in rows if "yaw" in r and bin_name(r["yaw"]) == b), key=lambda r: -r["drawn_px"])
        out += rs[:per_bin]
    return out


def crop(image: np.ndarray, lm: np.ndarray, side: int) -> np.ndarray:
    cx, cy = lm[48:60].mean(0).round().astype(int)
    h = side // 2
    pad = np.pad(image, ((h, h), (h, h), (0, 0)), mode="edge")
    return pad[cy : cy + 2 * h, cx : cx + 2 * h]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, default=Path("out/bench_mouth_cycle.jsonl"))
    ap.add_argument("--generator", type=Path, default=None, help="default: the shipped assets/gan3d")
    ap.add_argument("--per-bin", type=int, default=2)
    ap.add_argument("--height", type=int, default=120, help="rows are scaled to about this many pixels")
    ap.add_argument("--out", type=Path, default=Path("docs/mouth_cycle.png"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from editing.api import EditContext
    from editing.cycle import edit_and_back
    from editing.expressions import parse_expressions
    from editing.gan.checkpoint import SHIPPED, load_generators
    from editing.gan.refine import refine_face_edit
    from face3d.fit import fit_image
    from face3d.io import read_image, write_image

    ctx = EditContext.from_dir(refine="none")
    via = parse_expressions("neutral", ctx.fit_model.expression_names)[0]
    bundle = load_generators(args.generator or SHIPPED["texture"])
    rows = [json.loads(s) for s in args.bench.read_text().splitlines()]
    tiles = []
    for r in pick(rows, args.per_bin):
        image = read_image(r["image"])
        face = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector, 1, regressor=ctx.regressor)[0]
        cyc = edit_and_back(ctx.editor, image, face, via)
        gan = refine_face_edit(bundle, face, cyc.back)
        lm = face.fit.landmarks_fitted[0].numpy()
        side = int(2 * max(np.ptp(lm[48:60, 0]), 12))
        row = np.concatenate([crop(x, lm, side) for x in (cyc.there.image, cyc.back.image, gan, image)], 1)
        k = max(1, round(args.height / row.shape[0]))
        row = row.repeat(k, 0).repeat(k, 1)
        label = f"{Path(r['image']).name}  yaw {r['yaw']:+.0f}"
        cv2.putText(row, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(row)
    width = max(t.shape[1] for t in tiles)
    grid = np.concatenate([np.pad(t, ((0, 4), (0, width - t.shape[1]), (0, 0))) for t in tiles], 0)
    write_image(args.out, grid)
    print(f"wrote {args.out} ({len(tiles)} faces): closed | warp + fill | warp + generator | photo")
    return 0


if __name__ == "__main__":
    sys.exit(main())
