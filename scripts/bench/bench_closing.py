"""An open mouth edited to ``neutral``: how far the lips close, on LFW people held out of training.

    .venv/bin/python scripts/bench/bench_closing.py --n 30 --threads 1 --out out/bench_closing.json

Photos: the first photo of every person in sorted order, skipping the people whose photos the
shipped generators' training cache selected (``--exclude-cache-selection``, 1200 by default);
kept while dlib reads the inner lips apart by more than ``--min-gap`` inter-ocular distances (a
near-frontal face: dlib's landmarks, its detector's box). Each is edited to ``neutral`` with
``--refine``, and dlib reads the gap again. Closing is the fraction of the way from the photo's gap
to the median gap of FER2013's neutral test faces read the same way: per face, and pooled (the
summed closing over the summed distance). Writes JSON with every face.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from editing.api import EditContext
from editing.compare.quality import class_references, measure_closing
from editing.expressions import parse_expressions
from editing.gan.selection import lfw_heldout_photos
from face3d.io import atomic_write_json, read_image


def bootstrap(values: np.ndarray, stat, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    draws = [stat(values[rng.integers(0, len(values), len(values))]) for _ in range(n)]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/lfw"))
    ap.add_argument("--fer", default="../shared/data/fer2013/fer2013_48.npz")
    ap.add_argument("--n", type=int, default=30, help="open-mouth photos to edit")
    ap.add_argument("--min-gap", type=float, default=0.15, help="inner-lip gap, inter-ocular units")
    ap.add_argument("--exclude-cache-selection", type=int, default=1200)
    ap.add_argument("--refine", choices=("none", "auto", "gan"), default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="out/bench_closing.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    ctx = EditContext.from_dir(refine=args.refine)
    spec = parse_expressions("neutral", ctx.fit_model.expression_names)[0]
    fer = np.load(args.fer)
    classes = [str(c) for c in fer["classes"]]
    neutral = fer["x_test"][fer["y_test"] == classes.index("neutral")][:100]
    reference = class_references(ctx, {"neutral": neutral})["dlib:neutral"]["lip_gap"]
    rows, scanned = [], 0
    bar = tqdm(total=args.n, desc="open mouths", unit="face")
    for path in lfw_heldout_photos(args.data, args.exclude_cache_selection):
        scanned += 1
        got = measure_closing(read_image(path), ctx, spec, args.min_gap)
        if got is None:
            continue
        got["closing"] = (got["gap_before"] - got["gap_after"]) / (got["gap_before"] - reference)
        rows.append({"image": str(path.relative_to(args.data)), **got})
        bar.update(1)
        if len(rows) == args.n:
            break
    bar.close()
    if not rows:
        print("no open mouth found", file=sys.stderr)
        return 1
    before = np.array([r["gap_before"] for r in rows])
    after = np.array([r["gap_after"] for r in rows])
    closing = np.array([r["closing"] for r in rows])
    pooled = lambda idx: float((before[idx] - after[idx]).sum() / (before[idx] - reference).sum())  # noqa: E731
    idx = np.arange(len(rows))
    result = {
        "command": " ".join(sys.argv),
        "refine": args.refine,
        "faces": len(rows),
        "scanned": scanned,
        "reference_neutral_gap": reference,
        "closing_median": float(np.median(closing)),
        "closing_median_ci95": bootstrap(closing, np.median),
        "closing_pooled": pooled(idx),
        "closing_pooled_ci95": bootstrap(idx, pooled),
        "gap_before_median": float(np.median(before)),
        "gap_after_median": float(np.median(after)),
        "speckles_median": float(np.median([r["speckles"] for r in rows])),
        "rows": rows,
    }
    atomic_write_json(Path(args.out), result)
    print({k: v for k, v in result.items() if k != "rows"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
