"""Build the regressor's synthetic data set and train it (thin wrapper; see face3d.detect.regressor_*).

    .venv/bin/python scripts/train_regressor.py data --out out/regressor_data --workers 2 --worker 0
    .venv/bin/python scripts/train_regressor.py train --data out/regressor_data --out runs/regressor --resume

``data`` writes resumable npz shards (run one process per ``--worker`` index); ``train`` trains,
checkpoints every few minutes and, with ``--resume``, continues from the last checkpoint.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data", help="generate synthetic shards")
    d.add_argument("--lfw", default="../shared/data/lfw")
    d.add_argument("--out", default="out/regressor_data")
    d.add_argument("--max-photos", type=int, default=None)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--worker", type=int, default=0)
    d.add_argument("--workers", type=int, default=1)
    d.add_argument("--heldout", action="store_true", help="held-out persons (validation shards)")
    t = sub.add_parser("train", help="train the regressor")
    t.add_argument("--data", default="out/regressor_data")
    t.add_argument("--out", default="runs/regressor")
    t.add_argument("--minutes", type=float, default=45.0, help="wall-clock training budget")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-minutes", type=float, default=4.0)
    t.add_argument("--resume", action="store_true")
    t.add_argument("--init", default=None, help="fine-tune from these weights (a pretrained folder)")
    t.add_argument("--export", default=None, help="also save the final weights here (e.g. assets/regressor)")
    args = ap.parse_args(argv)
    if args.cmd == "data":
        from face3d.detect.regressor_data import generate

        generate(
            args.lfw,
            args.out,
            max_photos=args.max_photos,
            seed=args.seed,
            worker=args.worker,
            workers=args.workers,
            heldout=args.heldout,
        )
        return 0
    from face3d.detect.regressor_train import TrainConfig, train

    cfg = TrainConfig(
        minutes=args.minutes,
        batch_size=args.batch_size,
        lr=args.lr,
        threads=args.threads,
        seed=args.seed,
        checkpoint_minutes=args.checkpoint_minutes,
    )
    train(args.data, args.out, cfg, resume=args.resume, export=args.export, init=args.init)
    return 0


if __name__ == "__main__":
    sys.exit(main())
