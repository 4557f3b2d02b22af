"""The shading ratio's strength against identity: the dlib descriptor distance per strength.

    .venv/bin/python scripts/experiments/shading_strength.py --strengths 1,0.75,0.5,0.25,0 \
        --split train --per-bin 10 --out out/shading_strength.json

AFLW2000-3D faces of ``--split`` (a stratified draw of ``--per-bin`` per |yaw| bin, those under 60
degrees; fitted on the ground-truth landmark box) are edited to each of ``--expressions`` with
:attr:`editing.edit3d.EditConfig.shading_strength` set to each strength, ``--refine none``.
Writes the median dlib descriptor distance, input to output, per bin, expression and strength.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from face3d.argtypes import float_list


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strengths", type=float_list(0.0, 1.0), default=[1.0, 0.5, 0.0])
    ap.add_argument("--expressions", default="happy,surprise")
    ap.add_argument("--split", default="train", choices=("train", "heldout"))
    ap.add_argument("--per-bin", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--aflw", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from editing.api import EditContext, edit_fitted
    from editing.compare.quality import fit_on_box
    from editing.expressions import parse_expressions
    from face3d.detect import face_descriptor
    from face3d.eval import BIN_NAMES, select_split, stratified, yaw_bin
    from face3d.eval.aflw import load_aflw
    from face3d.io import atomic_write_json, read_image

    ctx = EditContext.from_dir(refine="none")
    specs = parse_expressions(args.expressions, ctx.fit_model.expression_names)
    samples = stratified(select_split(load_aflw(args.aflw), args.split), args.per_bin)
    samples = [s for s in samples if yaw_bin(s.yaw) < 2]
    base = ctx.editor.config
    dist: dict[tuple[str, str, float], list[float]] = {}
    for s in tqdm(samples, desc="shading strength", unit="img"):
        image = read_image(s.image_path)
        face = fit_on_box(ctx, image, s.box)
        if face is None:
            continue
        d0 = face_descriptor(image, face.landmarks_detected)
        for k in args.strengths:
            ctx.editor.config = dataclasses.replace(base, shading_strength=k)
            outs = edit_fitted(image, [face], specs, ctx).outputs
            for sp in specs:
                d = float(np.linalg.norm(face_descriptor(outs[sp.label], face.landmarks_detected) - d0))
                dist.setdefault((BIN_NAMES[yaw_bin(s.yaw)], sp.label, k), []).append(d)
    ctx.editor.config = base
    table = [
        {"bin": b, "target": t, "strength": k, "identity_median": float(np.median(v)), "n": len(v)}
        for (b, t, k), v in sorted(dist.items())
    ]
    atomic_write_json(Path(args.out), {"command": " ".join(sys.argv), "split": args.split, "rows": table})
    for r in table:
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
