"""``face3d train texture``: build (or extend) the edit-and-back cycle cache, then train the texture
generator on it (:func:`editing.train.texture.train_texture`). The CLI and scripts call
:func:`train_texture_generator`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import torch

from editing.train.cycle_data import CycleDataConfig, build_cycle_cache, load_cycle_cache
from editing.train.texture import TextureTrainConfig, TextureTrainSummary, train_texture
from face3d.errors import InputError


def train_texture_generator(
    inputs: list[str] | None,
    run_dir: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    config: TextureTrainConfig = TextureTrainConfig(),
    data_config: CycleDataConfig = CycleDataConfig(),
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    command: str = "",
) -> TextureTrainSummary:
    """Train the cycle-supervised texture generator.

    Args:
        inputs: photo files/folders to cycle into the cache (None: use the existing cache only).
        run_dir: the run folder (checkpoint, logs, samples, ``generator/``).
        cache_dir: the cycle cache (default ``run_dir/cycle_cache``).
        command: the command line, recorded with the weights.
    Raises:
        InputError: no inputs and no cache, or as the cache builder and trainer.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else Path(run_dir) / "cycle_cache"
    if inputs:
        for p in inputs:
            if not Path(p).exists():
                raise InputError(f"--data: {p} does not exist")
        build_cycle_cache(inputs, cache_dir, data_config, progress=progress)
    elif not (cache_dir / "config.json").is_file():
        raise InputError(f"no --data given and {cache_dir} holds no cycle cache")
    cache = load_cycle_cache(cache_dir)
    meta = {
        "crop_scale": cache.config.scale,
        "cache": str(cache_dir),
        "command": command,
        "expression_names": list(cache.expression_names),
        "trained_on": "edit-and-back cycles",
    }
    return train_texture(cache, run_dir, config, resume=resume, device=device, progress=progress, meta=meta)


def add_texture_arguments(p) -> None:
    """The flags of ``face3d train texture`` (argparse parser ``p``)."""
    d = TextureTrainConfig()
    p.add_argument(
        "--data", nargs="+", default=None, help="face photos (files/folders) to cycle into the cache"
    )
    p.add_argument("--out", required=True, help="run folder: checkpoint, samples, losses, generator/")
    p.add_argument("--cache", default=None, help="cycle cache folder (default RUN_DIR/cycle_cache)")
    p.add_argument("--steps", type=int, default=d.steps, help=f"most training steps (default {d.steps})")
    p.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help="stop after N held-out evaluations without a new best",
    )
    p.add_argument(
        "--batch-size", type=int, default=d.batch_size, help=f"crops per step (default {d.batch_size})"
    )
    p.add_argument("--seed", type=int, default=0, help="initialisation and batches")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where training runs")


def run_texture_from_args(args) -> int:
    """``face3d train texture``: check the flags, then :func:`train_texture_generator`."""
    if args.steps < 0 or args.batch_size < 1 or args.patience < 0:
        raise InputError("--steps and --patience must be >= 0, --batch-size >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: CUDA is not available on this machine")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    config = dataclasses.replace(
        TextureTrainConfig(),
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        patience=args.patience,
    )
    command = "face3d " + " ".join(sys.argv[1:]) if sys.argv and "face3d" in sys.argv[0] else ""
    s = train_texture_generator(
        args.data, args.out, args.cache, config, resume=args.resume, device=args.device, command=command
    )
    best = {"psnr": float("nan"), "psnr_cycle": float("nan"), "step": None, **s.best}
    print(
        f"trained texture: steps {s.first_step} -> {s.last_step} ({s.stopped}) in {s.seconds:.0f} s "
        f"({s.images_per_second:.1f} crops/s); best held-out mouth PSNR {best['psnr']:.2f} dB "
        f"(cycle {best['psnr_cycle']:.2f}) at step {best['step']}; weights: {s.run_dir / 'generator'}"
    )
    return 0
