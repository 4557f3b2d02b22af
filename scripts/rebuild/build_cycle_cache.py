"""Build (or resume) the texture generator's training data: edit-and-back cycles of real photos.

    nice .venv/bin/python scripts/rebuild/build_cycle_cache.py --out out/cycle_cache --threads 1

Training photos: every photo of the LFW people that the first generators' 1200-photo cache
selected (``--lfw-people-of``; every other person is held out for ``bench_mouth_cycle.py``), and
the training half of the AFLW2000-3D dev set (its held-out half is the benchmark's), interleaved so
that a partial cache holds both. Only faces whose fitted mouth is open are cycled (see
:mod:`editing.train.cycle_data`). Rerun the same command to resume.
"""

from __future__ import annotations

import argparse
import sys
from itertools import zip_longest
from pathlib import Path


def training_photos(lfw: Path, aflw: Path, lfw_people_of: int) -> list[str]:
    """LFW training people's photos and the AFLW train half, interleaved."""
    from editing.gan.selection import lfw_training_photos
    from face3d.eval.aflw import load_aflw, select_split

    a = [str(p) for p in lfw_training_photos(lfw, lfw_people_of)]
    b = [str(s.image_path) for s in select_split(load_aflw(aflw), "train")] if aflw.is_dir() else []
    ratio = max(1, len(a) // max(len(b), 1))
    chunks = [a[i : i + ratio] for i in range(0, len(a), ratio)]
    out = []
    for chunk, extra in zip_longest(chunks, b):
        out += (chunk or []) + ([extra] if extra else [])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="cache folder")
    ap.add_argument("--lfw", type=Path, default=Path("../shared/data/lfw"))
    ap.add_argument("--aflw", type=Path, default=Path("../shared/data/aflw2000-3d-dev"))
    ap.add_argument(
        "--lfw-people-of", type=int, default=1200, help="the LFW cache selection whose people train"
    )
    ap.add_argument("--max-images", type=int, default=None, help="process at most this many photos")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from editing.train.cycle_data import CycleDataConfig, build_cycle_cache
    from face3d.errors import Face3DError

    torch.set_num_threads(max(1, args.threads))
    try:
        photos = training_photos(args.lfw, args.aflw, args.lfw_people_of)[: args.max_images]
        summary = build_cycle_cache(photos, args.out, CycleDataConfig(), progress=not args.no_progress)
    except Face3DError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.code
    print(
        f"{len(photos)} photos: {summary.processed} processed, {summary.skipped} already done, "
        f"{len(summary.failures)} failed, {summary.seconds:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
