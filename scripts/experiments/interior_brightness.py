"""How bright and how red the drawn mouth interior is, against the photo's own open mouth.

    .venv/bin/python scripts/experiments/interior_brightness.py --split train --per-bin 12 \
        --out out/interior_brightness.json

Each AFLW2000-3D face of ``--split`` whose fitted mouth is open (:func:`editing.cycle.mouth_open`)
is closed to ``neutral`` with the warp path and reopened to its own fitted weights
(:func:`editing.cycle.edit_and_back`): the reopened interior is drawn, and the photo shows what
really lies at those pixels. Per |yaw| bin (the first ``--per-bin`` faces with at least 20 drawn
pixels): the median over faces of the drawn pixels' mean luminance, of the photo's at the same
pixels and of their ratio, and the median chromaticity (each channel's share of R + G + B) of
both. A calibration of the interior's colours (``editing.mouth``) should bring the ratio to 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

BINS = ("[0,30)", "[30,60)", "[60,90]")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="train", choices=("train", "heldout"))
    ap.add_argument("--per-bin", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--aflw", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from editing.api import EditContext
    from editing.compare.metrics import bin_name
    from editing.cycle import edit_and_back, mouth_open
    from editing.expressions import parse_expressions
    from face3d.eval.aflw import load_aflw, select_split
    from face3d.fit import fit_image
    from face3d.io import read_image
    from face3d.render.texture_fill import LUMA_601

    ctx = EditContext.from_dir(refine="none")
    names = ctx.fit_model.expression_names
    via = parse_expressions("neutral", names)[0]
    luma = np.array(LUMA_601)
    rows: dict[str, list[dict]] = {b: [] for b in BINS}
    for s in tqdm(select_split(load_aflw(args.aflw), args.split), desc="interior", unit="photo"):
        b = bin_name(abs(s.yaw))
        if len(rows[b]) >= args.per_bin:
            continue
        image = read_image(s.image_path)
        faces = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector, 1, regressor=ctx.regressor)
        if not faces or not mouth_open(faces[0], names):
            continue
        back = edit_and_back(ctx.editor, image, faces[0], via).back
        drawn = back.synthesized
        if drawn.sum() < 20:
            continue
        d, t = back.image[drawn].astype(np.float64), image[drawn].astype(np.float64)
        rows[b].append(
            {
                "image": s.image_path.name,
                "drawn_luma": float((d @ luma).mean()),
                "true_luma": float((t @ luma).mean()),
                "drawn_chroma": (d.mean(0) / d.mean(0).sum()).tolist(),
                "true_chroma": (t.mean(0) / t.mean(0).sum()).tolist(),
            }
        )
        if all(len(v) >= args.per_bin for v in rows.values()):
            break
    summary = {}
    for b, got in rows.items():
        if not got:
            continue

        def med(key, got=got):
            return np.median(np.array([r[key] for r in got], np.float64), 0).round(3).tolist()

        ratio = np.median([r["drawn_luma"] / max(r["true_luma"], 1.0) for r in got])
        summary[b] = {
            "faces": len(got),
            "drawn_luma": med("drawn_luma"),
            "true_luma": med("true_luma"),
            "luma_ratio": round(float(ratio), 3),
            "drawn_chroma": med("drawn_chroma"),
            "true_chroma": med("true_chroma"),
        }
        print(b, summary[b])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": sys.argv, "summary": summary, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
