"""Fine-tune the landmark/3DMM regressor on the train half of AFLW2000-3D dev (+ synthetic shards).

    .venv/bin/python scripts/rebuild/finetune_regressor.py --data ../shared/data/aflw2000-3d-dev \
        --synthetic out/regressor_data --out runs/regressor_aflw --init assets/regressor --minutes 20

Writes ``<out>/checkpoint.pt``, ``latest/``, ``final/`` (load with
``LandmarkRegressor.from_pretrained``) and ``log.csv``; ``--resume`` continues a killed run with the
same schedule. ``--measure N`` only times N training steps (images/second) and writes nothing.
The held-out half (``scripts/bench/bench_regressor.py --split heldout``) is never read.
"""

from __future__ import annotations

import argparse
import sys
import time

from face3d.argtypes import float_in


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev", help="AFLW2000-3D dev folder")
    ap.add_argument("--synthetic", default="out/regressor_data", help="synthetic shard folder")
    ap.add_argument(
        "--extra-synthetic",
        action="append",
        default=[],
        help="more shard folders added to --synthetic's training shards "
        "(e.g. scripts/rebuild/profile_labelled.py's)",
    )
    ap.add_argument("--out", default="runs/regressor_aflw")
    ap.add_argument("--init", default="assets/regressor", help="pretrained weights folder to start from")
    ap.add_argument("--minutes", type=float, default=20.0, help="wall-clock training budget")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--aflw-batch", type=int, default=32)
    ap.add_argument("--synthetic-batch", type=int, default=32)
    ap.add_argument("--checkpoint-minutes", type=float, default=4.0)
    ap.add_argument(
        "--upright-batch",
        type=int,
        default=8,
        help="AFLW crops per batch turned 1-3 quarter turns to train the upright head (0: none)",
    )
    ap.add_argument("--upright-weight", type=float, default=0.2, help="weight of the upright head's loss")
    ap.add_argument(
        "--upright-jitter",
        action="store_true",
        help="the upright head's crops jittered like detector boxes (shift 0.2, scale 0.25, rotation 25) "
        "and a quarter of them upright",
    )
    ap.add_argument(
        "--negative-batch",
        type=int,
        default=0,
        help="face-free windows of the AFLW photos per batch, confidence 0 (face3d/train/negatives.py)",
    )
    ap.add_argument("--negative-weight", type=float, default=1.0, help="weight of their confidence loss")
    ap.add_argument(
        "--negative-pool",
        type=int,
        default=0,
        help="draw this many face-free windows per batch and train on the --negative-batch most face-like",
    )
    ap.add_argument(
        "--negative-clutter", type=float, default=0.0, help="fraction of them drawn as synthetic clutter"
    )
    ap.add_argument("--rotation", type=float, default=15.0, help="in-plane rotation augmentation, +- degrees")
    ap.add_argument(
        "--ema",
        type=float_in(0.0, 0.9999),
        default=0.0,
        help="also keep a moving average of the weights with this decay per step (out/final_ema; 0: off)",
    )
    ap.add_argument(
        "--erase",
        type=float_in(0.0, 1.0),
        default=0.0,
        help="probability of an occluding rectangle per AFLW crop",
    )
    ap.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--no-calibrate", action="store_true", help="keep the init's landmark-convention offset")
    ap.add_argument("--measure", type=int, default=0, help="only time this many steps (img/s), then exit")
    args = ap.parse_args(argv)

    import torch

    from face3d.eval.aflw import load_aflw, select_split
    from face3d.eval.aflw_crops import AFLWCrops, AugConfig
    from face3d.eval.face_free import NegativeConfig
    from face3d.regress.network import RegressorNet
    from face3d.train.finetune import FinetuneConfig, finetune

    torch.set_num_threads(args.threads)
    samples = select_split(load_aflw(args.data), "train")
    if not samples:
        print(f"finetune_regressor: no AFLW2000-3D images in {args.data}", file=sys.stderr)
        return 2
    cfg = RegressorNet.from_pretrained(args.init).config
    t0 = time.perf_counter()
    aflw = AFLWCrops(samples, cfg.size, cfg.crop_scale)
    print(f"{len(aflw)} train-half images loaded in {time.perf_counter() - t0:.1f} s")
    config = FinetuneConfig(
        minutes=args.minutes,
        aflw_batch=args.aflw_batch,
        synthetic_batch=args.synthetic_batch,
        lr=args.lr,
        threads=args.threads,
        seed=args.seed,
        checkpoint_minutes=args.checkpoint_minutes,
        calibrate=not args.no_calibrate,
        upright_batch=args.upright_batch,
        upright_weight=args.upright_weight,
        upright_turns=(0, 1, 2, 3) if args.upright_jitter else (1, 2, 3),
        upright_aug=AugConfig(shift=0.2, log_scale=0.25, rotation=25.0) if args.upright_jitter else None,
        negative_batch=args.negative_batch,
        negative_weight=args.negative_weight,
        negative_pool=args.negative_pool,
        negatives=NegativeConfig(clutter=args.negative_clutter),
        aug=AugConfig(rotation=args.rotation, erase=args.erase),
        ema=args.ema,
    )
    if args.measure:
        _measure(aflw, args, config)
        return 0
    synthetic = [args.synthetic, *args.extra_synthetic] if args.extra_synthetic else args.synthetic
    finetune(aflw, synthetic, args.out, args.init, config, resume=args.resume)
    print(f"weights: {args.out}/final")
    return 0


def _measure(aflw, args, config) -> None:
    """Time ``args.measure`` steps of the training step (data + forward + backward), writing nothing."""
    from pathlib import Path

    import numpy as np
    import torch

    from face3d.regress.network import RegressorNet, normalise
    from face3d.train.aflw import aflw_losses
    from face3d.train.regressor import load_split, losses, to_batch

    net = RegressorNet.from_pretrained(args.init).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
    syn, _ = load_split(Path(args.synthetic), 16, 0)
    rng = np.random.default_rng(0)
    t_data = t_net = 0.0
    n = config.aflw_batch
    for _ in range(args.measure):
        t0 = time.perf_counter()
        ab = {k: torch.from_numpy(v) for k, v in aflw.batch(rng, n).items()}
        sb = to_batch(syn, np.sort(rng.choice(len(syn["label"]), config.synthetic_batch, replace=False)))
        t1 = time.perf_counter()
        out = net(torch.cat([normalise(ab["image"]), sb["image"]]))
        a = aflw_losses({k: v[:n] for k, v in out.items()}, ab, net.config.size)
        s = losses({k: v[n:] for k, v in out.items()}, sb, net.config)
        opt.zero_grad()
        (sum(a.values()) + sum(s.values())).backward()
        opt.step()
        t_data, t_net = t_data + t1 - t0, t_net + time.perf_counter() - t1
    n_img = args.measure * (n + config.synthetic_batch)
    print(
        f"{n_img / (t_data + t_net):.1f} img/s ({t_data / args.measure * 1e3:.0f} ms data, "
        f"{t_net / args.measure * 1e3:.0f} ms net per step)"
    )


if __name__ == "__main__":
    sys.exit(main())
