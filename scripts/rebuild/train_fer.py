"""Train the FER2013 expression classifier used by ``face3d compare`` (see editing/train/fer.py).

    nice -n 10 .venv/bin/python scripts/rebuild/train_fer.py --out runs/fer --epochs 100 --minutes 13.5 \\
        --seed 0 --export assets/fer

Checkpoints every epoch into ``--out`` (``checkpoint.pt``, ``log.csv``); ``--resume`` continues from the
last one. When finished, the model and ``metrics.json`` go to ``--out/final`` and, with ``--export``,
also to that folder (plus ``COMMAND.txt`` with this command line). ``--calibrate-crop assets/fer`` then
measures how FER2013 frames faces relative to dlib's landmarks (what ``fer_crop`` reproduces).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/fer2013/fer2013_48.npz")
    ap.add_argument("--out", default="runs/fer")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--channels", default="16,32,64,128", help="channels per stage")
    ap.add_argument("--convs", default="1,1,2,2", help="3x3 convolutions per stage")
    ap.add_argument("--feature-dim", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock budget the schedule follows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--export", default=None, help="also copy the final model here (e.g. assets/fer)")
    ap.add_argument(
        "--calibrate-crop",
        default=None,
        metavar="DIR",
        help="only measure FER2013's face framing (dlib landmarks on x_test) into DIR/metrics.json",
    )
    args = ap.parse_args(argv)

    import torch

    from editing.compare.fer import FerConfig
    from editing.train.fer import TrainConfig, calibrate_crop, load_fer2013, train
    from face3d.io import atomic_write_json, atomic_write_text

    torch.set_num_threads(args.threads)
    if args.calibrate_crop:
        calib = calibrate_crop(load_fer2013(args.data)["x_test"], seed=args.seed)
        path = Path(args.calibrate_crop) / "metrics.json"
        metrics = json.loads(path.read_text()) if path.is_file() else {}
        atomic_write_json(path, {**metrics, "crop_calibration": calib})
        print(json.dumps(calib))
        return 0

    net_config = FerConfig(
        channels=tuple(int(c) for c in args.channels.split(",")),
        convs_per_stage=tuple(int(c) for c in args.convs.split(",")),
        feature_dim=args.feature_dim,
    )
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        threads=args.threads,
        minutes=args.minutes,
        seed=args.seed,
    )
    metrics = train(args.data, args.out, net_config, cfg, resume=args.resume, progress=not args.no_progress)
    print(f"test accuracy {metrics['test_accuracy']:.4f} ({metrics['train_seconds']:.0f} s of training)")
    if args.export:
        dest = Path(args.export)
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "weights.pt", "metrics.json"):
            shutil.copyfile(Path(args.out) / "final" / name, dest / name)
        command = "nice -n 10 .venv/bin/python scripts/rebuild/train_fer.py " + shlex.join(
            sys.argv[1:] if argv is None else argv
        )
        atomic_write_text(dest / "COMMAND.txt", command + "\n")
        print(f"exported to {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
