"""Training the 3D path's texture generator on edit-and-back cycles (``face3d train texture``).

The data (:mod:`editing.train.cycle_data`): real photos edited to a closed mouth and back, whose
mouth interior the hand-made fill drew; the photo is the pixel-aligned truth. The generator sees
the cycle's crop, the mask of what was synthesised and the target (fitted) weights, and its output
``M * input + (1 - M) * T`` is pasted over the synthesised pixels grown by
:data:`editing.gan.refine.SYNTH_GROW_PX`, exactly as ``face3d edit --refine gan`` pastes it.

Losses (:class:`TextureLossWeights`): L1 and a perceptual term (the early feature maps of the
project's own FER classifier, :class:`FerPerceptual`) against the photo in the mouth region and the
pasted pixels; a hinge adversarial term from a patch discriminator on mouth patches (real mouths
versus cycled ones); and a regulariser that keeps M at 1 (the input kept) where nothing was
synthesised, with its total variation.

With ``disc_mask`` the discriminator is mask-aware (as inpainting GANs: SN-PatchGAN, DeepFill): it
gets the paste weights beside the patch, for the photo (the truth at those pixels) as for the
generator's paste, and its hinge losses count only the logits whose cell (grown by one) holds pasted
pixels: elsewhere real and fake patches are the same photo, and those logits carry no signal. An
optional feature-matching term pulls the discriminator's features of the paste toward the photo's.
A run may start from trained generator weights (``init_from``: adversarial fine-tuning of the
L1-trained generator) and draw wide-open mouths more often (``oversample_open``).

The run stops when the held-out score of :func:`editing.train.texture_eval.is_better` stops
improving (``patience`` evaluations without a new best; ``select``: the mouth L1, or a held-out
realism proxy subject to a PSNR-gain floor), or at ``steps``. A run folder holds ``config.json``,
``checkpoint.pt`` (everything ``--resume`` needs, written every ``checkpoint_minutes``),
``generator/`` (the best held-out weights, :func:`editing.gan.checkpoint.save_generators`),
``generator_last/`` (the latest evaluation's), ``losses.csv``/``losses.png``, ``heldout.csv`` and
``samples/step_XXXXXX.png``. Batches come from ``numpy.random.default_rng([seed, step])``, so a
resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from editing.compare.perceptual import FerPerceptual
from editing.gan.checkpoint import load_generators, save_generators
from editing.gan.networks import (
    Discriminator,
    DiscriminatorConfig,
    GeneratorConfig,
    TextureGenerator,
    apply_attention,
)
from editing.train import losses as L
from editing.train.runlog import append_losses, open_run, plot_losses, sample_grid, save_checkpoint
from editing.train.texture_data import (
    holdout_mask,
    make_batch,
    mirror_permutation,
    patches,
    prepare,
    sampling_probabilities,
)
from editing.train.texture_eval import evaluate, is_better
from face3d.errors import InputError
from face3d.io import write_image


@dataclass(frozen=True)
class TextureLossWeights:
    """Weights of the generator's loss terms.

    Attributes:
        l1: L1 to the photo over the mouth region and the pasted pixels.
        perceptual: :class:`FerPerceptual` distance over the same pixels.
        adv: hinge adversarial term on mouth patches.
        mask: mean of ``1 - M`` outside the pasted pixels (keep the input where nothing was drawn).
        mask_tv: total variation of M.
        feature_match: L1 between the discriminator's features of the paste's and the photo's
            mouth patches (pix2pixHD; 0: off, and not logged).
        style: :func:`editing.train.losses.statistics_l1` of the perceptual network's feature maps
            in the mouth region and the pasted pixels, paste vs photo (their texture statistics:
            sharpness; 0: off, and not logged).
    """

    l1: float = 10.0
    perceptual: float = 1.0
    adv: float = 0.3
    mask: float = 1.0
    mask_tv: float = 0.1
    feature_match: float = 0.0
    style: float = 0.0


@dataclass(frozen=True)
class TextureTrainConfig:
    """One cycle-training run of the texture generator.

    Attributes:
        steps: the most optimisation steps (a resumed run continues to this number).
        batch_size: crops per step.
        lr_g, lr_d: Adam learning rates; beta1, beta2: Adam betas.
        holdout_frac: fraction of the cache held out (by a hash of the name) for the stopping rule
            and the sample grids.
        eval_every: steps between held-out evaluations.
        patience: stop after this many evaluations without a better held-out mouth L1 (0: never).
        log_every, sample_every: in steps.
        checkpoint_minutes: wall-clock minutes between checkpoints (and one at every evaluation).
        patch: side of the mouth patches the discriminator judges, crop pixels.
        flip: mirror half the batches (weights swapped left for right).
        seed: seeds the initialisation and every batch.
        generator, discriminator: the architectures.
        losses: :class:`TextureLossWeights`.
        disc_mask: a mask-aware discriminator (module docstring); needs
            ``discriminator.extra_inputs == 1``.
        oversample_open: draw each training sample with probability proportional to
            ``1 + oversample_open * drawn pixels / their mean`` (0: uniform; wide-open mouths draw many).
        select: which evaluation's weights ``generator/`` keeps and ``patience`` waits on
            (:func:`editing.train.texture_eval.is_better`): ``"l1"`` the lowest held-out mouth L1;
            ``"realism"`` the lowest held-out mouth KID among evaluations with a mean PSNR gain over
            the fill of at least ``min_gain_db``.
        min_gain_db: see ``select``.
        init_from: a generator folder (:func:`editing.gan.checkpoint.save_generators`, same
            architecture) whose weights start the run ("": random initialisation).
    """

    steps: int = 20000
    batch_size: int = 8
    lr_g: float = 2e-4
    lr_d: float = 4e-4
    beta1: float = 0.5
    beta2: float = 0.999
    holdout_frac: float = 0.1
    eval_every: int = 200
    patience: int = 5
    log_every: int = 10
    sample_every: int = 400
    checkpoint_minutes: float = 3.0
    patch: int = 48
    flip: bool = True
    seed: int = 0
    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(extra_inputs=1))
    discriminator: DiscriminatorConfig = field(default_factory=lambda: DiscriminatorConfig(base=24, n_down=3))
    losses: TextureLossWeights = field(default_factory=TextureLossWeights)
    disc_mask: bool = False
    oversample_open: float = 0.0
    select: str = "l1"
    min_gain_db: float = 0.0
    init_from: str = ""

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1 or not 0 < self.holdout_frac < 1 or self.eval_every < 1:
            raise InputError(
                "steps >= 0, batch_size >= 1, 0 < holdout_frac < 1 and eval_every >= 1 are required"
            )
        if self.generator.extra_inputs != 1:
            raise InputError("the cycle-trained texture generator takes 1 extra input (the synthesised mask)")
        if self.discriminator.extra_inputs != int(self.disc_mask):
            raise InputError("a mask-aware discriminator (disc_mask) takes 1 extra input, any other none")
        if self.select not in ("l1", "realism") or self.oversample_open < 0:
            raise InputError("select must be 'l1' or 'realism' and oversample_open >= 0")

    @classmethod
    def from_dict(cls, d: dict) -> TextureTrainConfig:
        d = dict(d)
        d["generator"] = GeneratorConfig(**d["generator"])
        d["discriminator"] = DiscriminatorConfig(**d["discriminator"])
        d["losses"] = TextureLossWeights(**d["losses"])
        return cls(**d)


@dataclass(frozen=True)
class TextureTrainSummary:
    """The end of a run: steps done, why it stopped, the best held-out evaluation and speed."""

    run_dir: Path
    first_step: int
    last_step: int
    stopped: str
    best: dict
    seconds: float
    images_per_second: float


class TextureModels:
    """The generator, the discriminator, their optimisers and the frozen perceptual network."""

    def __init__(self, config: TextureTrainConfig, device="cpu", perceptual: FerPerceptual | None = None):
        torch.manual_seed(config.seed)
        self.config = config
        self.gen = TextureGenerator(config.generator).to(device)
        self.disc = Discriminator(config.discriminator).to(device)
        betas = (config.beta1, config.beta2)
        self.opt_g = torch.optim.Adam(self.gen.parameters(), config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), config.lr_d, betas=betas)
        self.perceptual = (perceptual or FerPerceptual()).to(device)
        if config.init_from:
            start = load_generators(config.init_from).texture
            same_weights = dataclasses.replace(start.config, detail_sigma=config.generator.detail_sigma)
            if same_weights != config.generator:  # the detail head has no weights of its own
                raise InputError(f"init_from: {config.init_from} holds another architecture: {start.config}")
            self.gen.load_state_dict(start.state_dict())

    def state_dict(self) -> dict:
        return {k: getattr(self, k).state_dict() for k in ("gen", "disc", "opt_g", "opt_d")}

    def load_state_dict(self, state: dict) -> None:
        for k in ("gen", "disc", "opt_g", "opt_d"):
            getattr(self, k).load_state_dict(state[k])

    def refine(self, b: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(the pasted output, M) of a batch: the inference rule on crops."""
        tex, m = self.gen(b["cycle"], b["y"], b["synth"])
        out = apply_attention(b["cycle"], tex, m)
        return b["alpha"] * out + (1 - b["alpha"]) * b["cycle"], m


def _logit_weight(region: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w): the largest paste weight in each logit's cell of ``region`` (B, 1, H, W),
    grown by one cell (a logit sees beyond its cell)."""
    return F.max_pool2d(F.adaptive_max_pool2d(region, logits.shape[-2:]), 3, 1, 1)


def train_step(models: TextureModels, b: dict) -> dict[str, float]:
    """One discriminator and one generator update on batch ``b``; returns the loss terms."""
    cfg, w = models.config, models.config.losses
    pasted, m = models.refine(b)
    real = patches(b["photo"], b["centre"], cfg.patch)
    fake = patches(pasted, b["centre"], cfg.patch)
    extra = patches(b["alpha"], b["centre"], cfg.patch) if cfg.disc_mask else None
    real_logits = models.disc(real, extra)[0]
    weight = _logit_weight(extra, real_logits) if cfg.disc_mask else None
    loss_d = L.d_hinge(real_logits, models.disc(fake.detach(), extra)[0], weight)
    models.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    models.opt_d.step()
    fake_feats = models.disc.features(fake, extra)
    terms = {
        "l1": L.masked_l1(pasted, b["photo"], b["weight"]),
        "perceptual": models.perceptual(pasted, b["photo"], b["weight"]),
        "adv": L.g_hinge(models.disc.patch(fake_feats[-1]), weight),
        "mask": L.mask_sparsity(m, 1 - b["alpha"]),
        "mask_tv": L.total_variation(m),
    }
    if w.feature_match:
        with torch.no_grad():
            real_feats = models.disc.features(real, extra)
        terms["feature_match"] = L.feature_matching(real_feats, fake_feats)
    if w.style:
        feats = models.perceptual._features  # the FER stages FerPerceptual compares
        with torch.no_grad():
            truth = feats(b["photo"])
        terms["style"] = L.statistics_l1(feats(pasted), truth, b["weight"])
    loss = sum(getattr(w, k) * v for k, v in terms.items())
    models.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    models.opt_g.step()
    return {**{k: float(v.detach()) for k, v in terms.items()}, "d": loss_d.item(), "g": loss.item()}


def _write_samples(models: TextureModels, data, held_idx, perm, device, path: Path) -> None:
    b = make_batch(data, held_idx[:6], np.zeros(min(6, len(held_idx)), bool), perm, device)
    with torch.no_grad():
        pasted, m = models.refine(b)
    write_image(path, sample_grid([b["cycle"], pasted, m.expand_as(pasted), b["photo"]]))


def _evaluate_and_keep(models: TextureModels, data, held_idx, device, state, step, run_dir, meta) -> None:
    """Score the held-out cycles, log them, write ``generator_last/`` and, when the selection rule
    says so, ``generator/``; updates ``state`` (best, bad_evals)."""
    cfg = models.config
    ev = evaluate(models, data, held_idx, device, realism=cfg.select == "realism")
    append_losses(run_dir / "heldout.csv", step, ev)
    kept = {**meta, "step": step, "heldout": ev}
    save_generators(run_dir / "generator_last", models.gen, None, meta["size"], kept)
    if is_better(ev, state["best"], cfg.select, cfg.min_gain_db):
        state["best"], state["bad_evals"] = {**ev, "step": step}, 0
        save_generators(run_dir / "generator", models.gen, None, meta["size"], kept)
    else:
        state["bad_evals"] += 1


def train_texture(
    cache,
    run_dir: str | os.PathLike,
    config: TextureTrainConfig = TextureTrainConfig(),
    resume: bool = False,
    device="cpu",
    progress: bool = True,
    meta: dict | None = None,
    perceptual: FerPerceptual | None = None,
) -> TextureTrainSummary:
    """Train (or resume) the texture generator on a :class:`editing.train.cycle_data.CycleCache`.

    Raises:
        InputError: too few samples, a run already in ``run_dir`` without ``resume``, ``resume``
            with another configuration, or ``init_from`` weights of another architecture.
    """
    run_dir = Path(run_dir)
    held = holdout_mask(cache.names, config.holdout_frac)
    held_idx, train_idx = np.flatnonzero(held), np.flatnonzero(~held)
    if len(train_idx) < config.batch_size or len(held_idx) == 0:
        raise InputError(f"the cache has {len(cache)} samples: too few to hold some out and fill a batch")
    models = TextureModels(config, device, perceptual)
    state = open_run(run_dir, config, TextureTrainConfig.from_dict, resume, ("steps", "patience"), device)
    if state is None:
        state = {"step": 0, "best": None, "bad_evals": 0}
    else:
        models.load_state_dict(state.pop("models"))
    held_key = hashlib.sha1("\n".join(sorted(cache.names[i] for i in held_idx)).encode()).hexdigest()
    if state.get("heldout") != held_key:  # a grown cache holds out more: earlier bests are not comparable
        state.update(heldout=held_key, best=None, bad_evals=0)
    data, perm = prepare(cache), mirror_permutation(cache.expression_names)
    probs = sampling_probabilities(data, train_idx, config.oversample_open)
    meta = {**(meta or {}), "size": int(cache.photo.shape[1]), "train_samples": int(len(train_idx))}
    start, step = int(state["step"]), int(state["step"])
    if start == 0 and config.init_from and state["best"] is None:  # the starting weights' score
        _evaluate_and_keep(models, data, held_idx, device, state, 0, run_dir, meta)
    t0, last_ckpt, last, stopped = time.perf_counter(), time.perf_counter(), {}, "steps"
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not progress)
    for step in bar:
        rng = np.random.default_rng([config.seed, step])
        if probs is None:
            idx = train_idx[rng.integers(0, len(train_idx), config.batch_size)]
        else:
            idx = rng.choice(train_idx, config.batch_size, p=probs)
        flip = (rng.random(config.batch_size) < 0.5) & config.flip
        torch.manual_seed(config.seed * 1_000_003 + step)
        last = train_step(models, make_batch(data, idx, flip, perm, device))
        step += 1
        if step % config.log_every == 0:
            append_losses(run_dir / "losses.csv", step, last)
            bar.set_postfix({k: f"{last[k]:.3f}" for k in ("l1", "adv", "d")})
        if step % config.sample_every == 0:
            _write_samples(models, data, held_idx, perm, device, run_dir / "samples" / f"step_{step:06d}.png")
            plot_losses(run_dir / "losses.csv", run_dir / "losses.png")
        if step % config.eval_every == 0:
            _evaluate_and_keep(models, data, held_idx, device, state, step, run_dir, meta)
            save_checkpoint(run_dir, {**state, "step": step, "models": models.state_dict()})
            last_ckpt = time.perf_counter()
            if config.patience and state["bad_evals"] >= config.patience:
                stopped = "held-out cycle error stopped falling"
                break
        elif time.perf_counter() - last_ckpt > 60 * config.checkpoint_minutes:
            save_checkpoint(run_dir, {**state, "step": step, "models": models.state_dict()})
            last_ckpt = time.perf_counter()
    if step > start:
        save_checkpoint(run_dir, {**state, "step": step, "models": models.state_dict()})
    secs = time.perf_counter() - t0
    ips = (step - start) * config.batch_size / secs if secs > 0 else 0.0
    return TextureTrainSummary(run_dir, start, step, stopped, state["best"] or {}, secs, ips)
