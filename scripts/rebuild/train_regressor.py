"""Build the regressor's synthetic data set and train it (thin wrapper; see face3d.train).

    .venv/bin/python scripts/rebuild/train_regressor.py data --out out/regressor_data --workers 2 --worker 0
    .venv/bin/python scripts/rebuild/train_regressor.py train --data out/regressor_data \\
        --out runs/regressor --resume

``data`` writes resumable npz shards (run one process per ``--worker`` index); ``train`` trains,
checkpoints every few minutes and, with ``--resume``, continues from the last checkpoint.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    from face3d.errors import Face3DError
    from face3d.train import commands as rc

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data", help="generate synthetic shards")
    d.add_argument("--lfw", default="../shared/data/lfw", help="photos: LFW layout or a flat folder")
    d.add_argument("--out", default="out/regressor_data")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--heldout", action="store_true", help="held-out persons (validation shards)")
    rc.add_data_arguments(d)
    t = sub.add_parser("train", help="train the regressor")
    t.add_argument("--data", default="out/regressor_data")
    t.add_argument("--out", default="runs/regressor")
    t.add_argument("--seed", type=int, default=0)
    rc.add_train_arguments(t)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "data":
            rc.generate_from_args(args.lfw, args.out, args, heldout=args.heldout)
        else:
            rc.train_from_args(args.data, args.out, args)
    except Face3DError as err:
        print(f"train_regressor: error: {err}", file=sys.stderr)
        return err.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
