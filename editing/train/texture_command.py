"""``face3d train texture``: build (or extend) the edit-and-back cycle cache, then train the texture
generator on it (:func:`editing.train.texture.train_texture`). The CLI and scripts call
:func:`train_texture_generator`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import torch

from editing.train.cycle_data import CycleDataConfig, build_cycle_cache, load_cycle_cache
from editing.train.texture import (
    TextureLossWeights,
    TextureTrainConfig,
    TextureTrainSummary,
    train_texture,
)
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
    """The flags of ``face3d train texture`` (argparse parser ``p``). The training settings default
    to None: a new run takes :class:`TextureTrainConfig`'s defaults for those not given, and
    ``--resume`` the run's saved ``config.json`` (only ``--steps`` and ``--patience`` may differ)."""
    d, w = TextureTrainConfig(), TextureLossWeights()
    p.add_argument(
        "--data", nargs="+", default=None, help="face photos (files/folders) to cycle into the cache"
    )
    p.add_argument("--out", required=True, help="run folder: checkpoint, samples, losses, generator/")
    p.add_argument("--cache", default=None, help="cycle cache folder (default RUN_DIR/cycle_cache)")
    settings = [
        ("--steps", int, f"most training steps (default {d.steps})"),
        ("--patience", int, f"stop after N held-out evaluations without a new best (default {d.patience})"),
        ("--batch-size", int, f"crops per step (default {d.batch_size})"),
        ("--seed", int, f"initialisation and batches (default {d.seed})"),
        ("--eval-every", int, f"steps between held-out evaluations (default {d.eval_every})"),
        ("--lr-g", float, f"generator learning rate (default {d.lr_g})"),
        ("--lr-d", float, f"discriminator learning rate (default {d.lr_d})"),
        ("--l1-weight", float, f"L1 weight (default {w.l1})"),
        ("--perceptual-weight", float, f"perceptual weight (default {w.perceptual})"),
        ("--adv-weight", float, f"adversarial weight (default {w.adv})"),
        ("--feature-match-weight", float, f"discriminator feature matching (default {w.feature_match})"),
        ("--style-weight", float, f"texture statistics of the mouth (default {w.style})"),
        ("--oversample-open", float, "draw wide-open mouths more often (default 0: uniform)"),
        ("--select", str, "best weights: l1 (held-out mouth L1) or realism (held-out mouth KID)"),
        ("--min-gain-db", float, "--select realism: least held-out PSNR gain over the fill"),
        ("--init-from", str, "start from this generator folder's weights (fine-tuning)"),
        ("--detail-sigma", float, "T keeps the input's detail finer than this blur, crop px (0: off)"),
    ]
    for flag, kind, text in settings:
        p.add_argument(flag, type=kind, default=None, help=text)
    p.add_argument(
        "--mask-aware-d",
        action="store_true",
        default=None,
        help="the discriminator also gets the mask of the pasted pixels and judges only patches near them",
    )
    p.add_argument(
        "--no-spectral-norm",
        action="store_true",
        default=None,
        help="a discriminator without spectral normalisation (free to amplify small differences)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where training runs")


_TOP = ("steps", "patience", "batch_size", "seed", "eval_every", "lr_g", "lr_d")
_TOP += ("oversample_open", "select", "min_gain_db", "init_from")
_LOSSES = {"l1_weight": "l1", "perceptual_weight": "perceptual", "adv_weight": "adv"}
_LOSSES.update(feature_match_weight="feature_match", style_weight="style")


def config_from_args(args) -> TextureTrainConfig:
    """The run's settings: the saved ``config.json`` with ``--resume`` (else the defaults), with
    the flags given on top."""
    saved = Path(args.out) / "config.json"
    if args.resume and saved.is_file():
        config = TextureTrainConfig.from_dict(json.loads(saved.read_text()))
    else:
        config = TextureTrainConfig()
    top = {k: getattr(args, k) for k in _TOP if getattr(args, k, None) is not None}
    losses = {v: getattr(args, k) for k, v in _LOSSES.items() if getattr(args, k, None) is not None}
    if losses:
        top["losses"] = dataclasses.replace(config.losses, **losses)
    disc = {}
    if getattr(args, "mask_aware_d", None):
        top["disc_mask"], disc["extra_inputs"] = True, 1
    if getattr(args, "no_spectral_norm", None):
        disc["spectral_norm"] = False
    if disc:
        top["discriminator"] = dataclasses.replace(config.discriminator, **disc)
    if getattr(args, "detail_sigma", None) is not None:
        top["generator"] = dataclasses.replace(config.generator, detail_sigma=args.detail_sigma)
    return dataclasses.replace(config, **top)


def run_texture_from_args(args) -> int:
    """``face3d train texture``: check the flags, then :func:`train_texture_generator`."""
    if (args.steps or 0) < 0 or (args.batch_size or 1) < 1 or (args.patience or 0) < 0:
        raise InputError("--steps and --patience must be >= 0, --batch-size >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: CUDA is not available on this machine")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    config = config_from_args(args)
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
