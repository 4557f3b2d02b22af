"""Render the AFLW2000-3D train half at new poses: synthetic shards from labelled photos.

    .venv/bin/python scripts/rebuild/profile_labelled.py --data ../shared/data/aflw2000-3d-dev \\
        --out out/regressor_data_aflw

Each train-half photo is fitted to its ground-truth landmarks (in the landmark convention stored
in ``--weights``) and its head re-rendered mostly at |yaw| >= 45 degrees
(:func:`face3d.train.profile.profile_labelled`). The shards are resumable (rerun the
same command) and feed ``scripts/rebuild/finetune_regressor.py --extra-synthetic``. The held-out half is
never read.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from face3d.argtypes import float_in, int_at_least


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev", help="AFLW2000-3D dev folder")
    ap.add_argument("--out", default="out/regressor_data_aflw", help="shard folder")
    ap.add_argument(
        "--weights", default=None, help="regressor folder whose lm_offset is the labels' convention"
    )
    ap.add_argument("--renders", type=int, default=None, help="renders per photo (default 16)")
    ap.add_argument("--profile-fraction", type=float, default=None, help="share of renders at |yaw| >= 45")
    ap.add_argument(
        "--max-pitch",
        type=float_in(0, 90),
        default=None,
        help="pitch range of the renders, degrees (default 30; drawn from N(0, max/2), clipped)",
    )
    ap.add_argument("--max-photos", type=int, default=None, help="use at most N photos")
    ap.add_argument("--size", type=int_at_least(32), default=None, help="crop side, pixels (default 96)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int_at_least(1), default=1, help="torch threads")
    args = ap.parse_args(argv)

    import torch

    from face3d.eval.aflw import load_aflw, select_split
    from face3d.regress.network import RegressorNet
    from face3d.train.profile import LABELLED_CONFIG, profile_labelled

    torch.set_num_threads(args.threads)
    samples = select_split(load_aflw(args.data), "train")[: args.max_photos]
    if not samples:
        print(f"profile_labelled: no AFLW2000-3D images in {args.data}", file=sys.stderr)
        return 2
    config = LABELLED_CONFIG
    if args.renders is not None:
        config = replace(config, renders_per_photo=args.renders)
    if args.profile_fraction is not None:
        config = replace(config, profile_fraction=args.profile_fraction)
    if args.size is not None:
        config = replace(config, size=args.size)
    if args.max_pitch is not None:
        config = replace(config, max_pitch=args.max_pitch)
    offset = RegressorNet.from_pretrained(args.weights).lm_offset
    profile_labelled(samples, args.out, config, landmark_offset=offset, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
