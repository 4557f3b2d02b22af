"""Build (or resume) the 2D baseline's distillation data: the 3D warp's motion on training photos.

    nice .venv/bin/python scripts/rebuild/build_flow_cache.py --out out/flow_cache --threads 1

Training photos: every photo of the LFW people that the first generators' 1200-photo cache
selected (``--lfw-people-of``, the 3D path's generator's photos; every other person is held out),
in a seeded shuffled order, so that a partial cache spreads over the people. Rerun the same command
to resume (see :mod:`editing.train.flow_cache`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="cache folder")
    ap.add_argument("--lfw", type=Path, default=Path("../shared/data/lfw"))
    ap.add_argument(
        "--lfw-people-of", type=int, default=1200, help="the LFW cache selection whose people train"
    )
    ap.add_argument("--max-images", type=int, default=None, help="process at most this many photos")
    ap.add_argument("--targets", type=int, default=4, help="target expressions per photo")
    ap.add_argument("--shard-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from editing.gan.selection import lfw_training_photos
    from editing.train.flow_cache import FlowDataConfig, build_flow_cache
    from face3d.errors import Face3DError

    torch.set_num_threads(max(1, args.threads))
    photos = [str(p) for p in lfw_training_photos(args.lfw, args.lfw_people_of)]
    photos = [photos[i] for i in np.random.default_rng(0).permutation(len(photos))][: args.max_images]
    config = FlowDataConfig(targets_per_image=args.targets, shard_size=args.shard_size)
    try:
        summary = build_flow_cache(photos, args.out, config, progress=not args.no_progress)
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
