"""Command-line plumbing of the regressor's training, shared by ``face3d train regressor`` and
``scripts/rebuild/train_regressor.py``: argument definitions, their validation and the two steps
(synthetic data from photos, then training), each a thin call into
:func:`face3d.train.data.generate` and :func:`face3d.train.regressor.train`.

Every user mistake (missing folder, no photos, no fitted face, bad number) raises a one-line
:class:`face3d.errors.Face3DError`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from face3d.errors import Face3DError, InputError
from face3d.train.data import DataConfig, generate, list_photos
from face3d.train.regressor import TrainConfig, train

DATA_SUBDIR = "data"
"""Where ``face3d train regressor`` writes the synthetic shards inside its run folder."""


def add_data_arguments(p: argparse.ArgumentParser, workers: bool = True) -> None:
    """Options of the data step (the photo folder and the output are added by the caller);
    ``workers``: also ``--workers``/``--worker`` (several processes sharing the shards)."""
    p.add_argument("--max-photos", type=int, default=None, help="use at most N photos (default all)")
    p.add_argument("--size", type=int, default=96, help="crop side of the renders, pixels (default 96)")
    if workers:
        p.add_argument("--workers", type=int, default=1, help="data processes sharing the shards")
        p.add_argument("--worker", type=int, default=0, help="index of this data process")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the training step (the data and run folders are added by the caller)."""
    p.add_argument("--minutes", type=float, default=45.0, help="wall-clock training budget (default 45)")
    p.add_argument("--epochs", type=float, default=None, help="stop after N passes over the data")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the network trains")
    p.add_argument("--checkpoint-minutes", type=float, default=4.0)
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--init", default=None, help="fine-tune from these weights (a pretrained folder)")
    p.add_argument("--export", default=None, help="also save the final weights here (e.g. assets/regressor)")


def train_config_from_args(args):
    """A :class:`face3d.train.regressor.TrainConfig` from parsed arguments (validated)."""
    import torch


    for name in ("minutes", "epochs", "lr", "checkpoint_minutes"):
        v = getattr(args, name)
        if v is not None and not v > 0:
            raise InputError(f"--{name.replace('_', '-')} must be positive, got {v}")
    for name in ("batch_size", "threads"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise Face3DError("--device cuda: CUDA is not available on this machine")
    return TrainConfig(
        minutes=args.minutes,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        threads=args.threads,
        device=args.device,
        seed=args.seed,
        checkpoint_minutes=args.checkpoint_minutes,
    )


def generate_from_args(photos, shards, args, heldout: bool = False, model_dir=None) -> list[Path]:
    """Synthetic shards from the photos in ``photos`` (LFW layout or a flat folder) into ``shards``."""
    photos = Path(photos)
    if not photos.is_dir():
        raise InputError(f"{photos}: no such folder of photos")
    if args.max_photos is not None and args.max_photos < 1:
        raise InputError(f"--max-photos must be at least 1, got {args.max_photos}")
    if not 32 <= args.size <= 512:
        raise InputError(f"--size must be in [32, 512] pixels, got {args.size}")
    worker, workers = getattr(args, "worker", 0), getattr(args, "workers", 1)
    if not 0 <= worker < workers:
        raise InputError(f"--worker must be in [0, --workers), got {worker} of {workers}")
    if not list_photos(photos, heldout):
        raise InputError(f"{photos}: no photos (jpg, png, ...) in it or its sub-folders")
    return generate(
        photos,
        shards,
        DataConfig(size=args.size),
        max_photos=args.max_photos,
        seed=args.seed,
        worker=worker,
        workers=workers,
        heldout=heldout,
        model_dir=model_dir,
    )


def train_from_args(shards, run_dir, args, model_dir=None):
    """Train from the shards in ``shards`` into ``run_dir``; returns the network (eval mode)."""
    config = train_config_from_args(args)
    shards = Path(shards)
    if not shards.is_dir() or not any(shards.glob("shard_*.npz")):
        raise InputError(f"{shards}: no training shards (shard_*.npz); no photo gave a fitted face?")
    if args.init is not None and not Path(args.init).is_dir():
        raise InputError(f"--init {args.init}: no such weights folder")
    return train(
        shards, run_dir, config, resume=args.resume, export=args.export, init=args.init, model_dir=model_dir
    )


def train_regressor(args) -> int:
    """``face3d train regressor``: shards from ``args.data`` photos into ``<out>/data`` (resumable),
    then training into ``args.out`` (``final/`` holds the weights)."""
    run, model_dir = Path(args.out), getattr(args, "model_dir", None)
    if not Path(args.data).is_dir():  # before anything is written
        raise InputError(f"--data {args.data}: no such folder of photos")
    train_config_from_args(args)  # bad numbers fail before the (long) data step
    generate_from_args(args.data, run / DATA_SUBDIR, args, model_dir=model_dir)
    train_from_args(run / DATA_SUBDIR, run, args, model_dir)
    print(f"weights: {run / 'final'} (load with LandmarkRegressor.from_pretrained)")
    return 0
