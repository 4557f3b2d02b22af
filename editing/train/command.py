"""``face3d train deform``: build (or extend) the crop cache from photos, then train the 2D-only
DefGAN baseline (``face3d train texture`` is :mod:`editing.train.texture_command`).

A thin layer over :func:`editing.train.gan_cache.build_cache` and :func:`editing.train.gan.train`; the
CLI and scripts call :func:`train_generators`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch

from editing.train.gan import LossWeights, TrainConfig, TrainSummary, train
from editing.train.gan_cache import build_cache
from editing.train.gan_data import DataConfig, load_cache
from face3d.errors import InputError

EXPR_WEIGHT = 1.0
"""Default weight of the expression loss on the generator's output. The 2D path's expression is
driven by ``LossWeights.warp_expr`` on the warped image (GANimation weighs its AU regression 4000
against a cycle weight of 10); a large weight on the output lets the texture generator paint
adversarial patterns for the discriminator's expression head instead of deforming the face. The
expression error is standardised (``TrainConfig.expr_standardize``: about 30x larger values), so
1.0 weighs about what ``LossWeights.expr``'s 30 does unstandardised."""


DISC_WARMUP = 1500
"""Default discriminator warm-up steps (the 2D path's expression comes only from the
discriminator's expression head, so it must have learnt before the generators follow it)."""


def train_generators(
    inputs: list[str] | None,
    run_dir: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    config: TrainConfig | None = None,
    data_config: DataConfig = DataConfig(),
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    command: str = "",
) -> TrainSummary:
    """Train the 2D baseline's generators (deformation + texture) on face photos.

    Args:
        inputs: photo files/folders to cache (fitted, cropped, re-rendered); None: use the existing
            cache only.
        run_dir: the run directory (checkpoints, logs, samples, ``generator/``).
        cache_dir: the crop cache (default ``run_dir/cache``); shared by runs built from the same
            photos: the deform path only reads photos, fitted weights, targets and masks.
        config: :class:`TrainConfig`.
        command: the command line, recorded with the weights.
    Raises:
        InputError: no inputs and no cache, or as the cache builder and trainer.
    """
    config = config or TrainConfig()
    cache_dir = Path(cache_dir) if cache_dir is not None else Path(run_dir) / "cache"
    if inputs:
        for p in inputs:
            if not Path(p).exists():
                raise InputError(f"--data: {p} does not exist")
        summary = build_cache(inputs, cache_dir, data_config, progress=progress)
        print(
            f"cache {cache_dir}: {summary.total_samples} samples ({summary.samples} new, "
            f"{len(summary.failures)} failures, median {summary.median_ms:.0f} ms/image)"
        )
    elif not (cache_dir / "config.json").is_file():
        raise InputError(f"no --data given and {cache_dir} holds no cache")
    cache = load_cache(cache_dir)
    meta = {
        "crop_scale": cache.config.scale,
        "cache": str(cache_dir),
        "command": command,
        "expression_names": list(cache.expression_names),
    }
    return train(cache, run_dir, config, resume=resume, device=device, progress=progress, meta=meta)


def add_arguments(p) -> None:
    """The flags of ``face3d train deform`` (argparse parser ``p``)."""
    p.add_argument("--data", nargs="+", default=None, help="face photos (files/folders) to cache")
    p.add_argument("--out", required=True, help="run folder: checkpoints, samples, losses, generator/")
    p.add_argument("--cache", default=None, help="crop cache folder (default RUN_DIR/cache), shareable")
    p.add_argument("--steps", type=int, default=3000, help="total training steps (default 3000)")
    p.add_argument("--batch-size", type=int, default=8, help="crops per step (default 8)")
    p.add_argument("--seed", type=int, default=0, help="initialisation and batches")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--max-images", type=int, default=None, help="cache at most N photos (an even spread)")
    p.add_argument("--targets", type=int, default=2, help="target expressions rendered per photo (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where training runs")
    p.add_argument(
        "--expr-weight",
        type=float,
        default=None,
        help=f"weight of the expression-regression loss (default {EXPR_WEIGHT:g})",
    )
    p.add_argument(
        "--disc-warmup",
        type=int,
        default=None,
        help=f"steps training the discriminator's expression head alone first (default {DISC_WARMUP})",
    )
    p.add_argument(
        "--expr-standardize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="divide each expression weight's error by its spread over the photos (default: on)",
    )
    p.add_argument(
        "--warp-expr-weight",
        type=float,
        default=LossWeights.warp_expr,
        help=f"weight of the expression loss on the warped image (default {LossWeights.warp_expr:g})",
    )


def run_from_args(args) -> int:
    """``face3d train deform``: check the flags, then :func:`train_generators`."""
    if args.steps < 0 or args.batch_size < 1 or args.targets < 1:
        raise InputError("--steps must be >= 0, --batch-size and --targets >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: CUDA is not available on this machine")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    expr = EXPR_WEIGHT if args.expr_weight is None else args.expr_weight
    losses = dataclasses.replace(LossWeights(), expr=expr, warp_expr=args.warp_expr_weight)
    warmup = DISC_WARMUP if args.disc_warmup is None else args.disc_warmup
    if warmup < 0:
        raise InputError("--disc-warmup must be >= 0")
    standardize = True if args.expr_standardize is None else args.expr_standardize
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        losses=losses,
        expr_standardize=standardize,
        disc_warmup=warmup,
    )
    data_config = DataConfig(max_images=args.max_images, targets_per_image=args.targets)
    command = "face3d " + " ".join(sys.argv[1:]) if sys.argv and "face3d" in sys.argv[0] else ""
    summary = train_generators(
        args.data, args.out, args.cache, config, data_config, args.resume, args.device, command=command
    )
    print(
        f"trained deform: steps {summary.first_step} -> {summary.last_step} in {summary.seconds:.0f} s "
        f"({summary.images_per_second:.1f} crops/s); weights: {summary.run_dir / 'generator'}"
    )
    return 0
