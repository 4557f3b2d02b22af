"""Self-supervised training of the 2D-only DefGAN baseline on a cache of fitted face crops
(``face3d train deform``; the 3D path's texture generator is trained on edit-and-back cycles by
:mod:`editing.train.texture`).

``G_tex(warp(I, G_def(I, y_src, y_tgt)), y_tgt)`` with its own texture generator; losses:
adversarial, expression regression, cycle (edit back to ``y_src`` reconstructs I), deformation
smoothness and magnitude, mask regularisers.

It edits only inside the cached face mask (``mask``), as the paste-back does at inference. The
discriminator's expression head learns the fitted ARKit weights of the real photos (the labels come
from this project's fitter, as DefGAN's came from OpenFace).

A run directory holds ``config.json`` (this :class:`TrainConfig`), ``checkpoint.pt`` (everything
``--resume`` needs), ``generator/`` (:func:`editing.gan.checkpoint.save_generators`: the shippable
weights with their config), ``losses.csv``, ``losses.png`` and ``samples/step_XXXXXX.png``. Batches
are drawn from ``numpy.random.default_rng([seed, step])``, so a resumed run repeats exactly the
batches an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from editing.gan.checkpoint import save_generators
from editing.gan.networks import (
    DeformationGenerator,
    Discriminator,
    DiscriminatorConfig,
    GeneratorConfig,
    TextureGenerator,
    apply_attention,
    warp,
)
from editing.train import losses as L
from editing.train.runlog import append_losses, open_run, plot_losses, sample_grid, save_checkpoint
from face3d.errors import InputError
from face3d.io import write_image


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (GANimation's balance, rescaled to MSE on weights in [0, 1]).

    Attributes:
        adv: hinge adversarial term of the generator.
        expr: expression regression of the output to the target weights (generator and the
            discriminator's expression head on real photos).
        cycle: L1 of the edit-and-back round trip to the input.
        identity: low-frequency L1 between output and input (skin tone, hair, lighting).
        mask: mean of ``1 - M`` inside the face mask (prefer keeping the input).
        mask_tv: total variation of M.
        flow_tv: total variation of the flow.
        flow_l2: mean squared flow.
        warp_expr: expression regression of the warped input alone, before the texture
            generator (DefGAN: the deformation must carry the expression; weighted like GANimation's
            AU term, since a smooth low-resolution flow cannot paint adversarial texture).
    """

    adv: float = 1.0
    expr: float = 30.0
    cycle: float = 10.0
    identity: float = 2.0
    mask: float = 0.1
    mask_tv: float = 0.5
    flow_tv: float = 5.0
    flow_l2: float = 1.0
    warp_expr: float = 1000.0


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes:
        kind: ``"deform"`` (the 2D-only baseline; the only kind this engine trains).
        steps: total optimisation steps (a resumed run continues to this number).
        batch_size: crops per step.
        lr_g, lr_d: Adam learning rates of the generators and the discriminator.
        beta1, beta2: Adam betas.
        cached_target_frac: fraction of targets taken from the cache's edit targets
            (presets and random mixes); the rest are other photos' fitted weights.
        holdout: the first ``holdout`` cache samples are never trained on (sample grids use them;
            the first ones, so the split stays put while a cache grows).
        n_samples: held-out samples shown in each sample grid.
        log_every, sample_every, checkpoint_every: in steps.
        seed: seeds the networks' initialisation and every batch.
        generator: the texture generator's architecture.
        deform_generator: the deformation generator's architecture.
        discriminator: the discriminator's architecture.
        losses: :class:`LossWeights`.
        expr_standardize: divide each expression weight's regression error by its standard
            deviation over the training photos' fitted weights (floored at 0.05), so the weights
            that actually vary drive the expression head and the generators.
        disc_warmup: steps that train only the discriminator's expression head on real photos before
            the GAN starts (a generator can only follow an expression critic that has learnt
            something; at the start it predicts the mean).
    """

    kind: str = "deform"
    steps: int = 3000
    batch_size: int = 8
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    cached_target_frac: float = 0.5
    holdout: int = 32
    n_samples: int = 6
    log_every: int = 10
    sample_every: int = 100
    checkpoint_every: int = 25
    seed: int = 0
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    deform_generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(kind="deform"))
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    losses: LossWeights = field(default_factory=LossWeights)
    expr_standardize: bool = False
    disc_warmup: int = 0

    def __post_init__(self):
        if self.kind != "deform":
            raise InputError(f"this engine trains kind 'deform' only, got {self.kind!r}")
        if self.steps < 0 or self.batch_size < 1:
            raise InputError("steps must be >= 0 and batch_size >= 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """From :meth:`to_dict` (fields of the retired 3D texture path, ``recon_frac`` and the
        ``rec`` loss weight, are ignored)."""
        d = {k: v for k, v in d.items() if k != "recon_frac"}
        d["losses"] = {k: v for k, v in d["losses"].items() if k != "rec"}
        d["generator"] = GeneratorConfig(**d["generator"])
        d["deform_generator"] = GeneratorConfig(**d["deform_generator"])
        d["discriminator"] = DiscriminatorConfig(**d["discriminator"])
        d["losses"] = LossWeights(**d["losses"])
        return cls(**d)


@dataclass(frozen=True)
class TrainSummary:
    """What :func:`train` did.

    Attributes:
        run_dir: the run directory.
        first_step, last_step: the steps this call ran (``first_step == last_step`` when done already).
        seconds: wall time of this call.
        images_per_second: training crops per second in this call.
        last_losses: the last logged loss values by name.
    """

    run_dir: Path
    first_step: int
    last_step: int
    seconds: float
    images_per_second: float
    last_losses: dict[str, float]


class Models:
    """The networks and optimisers of a run (built from its config, seeded)."""

    def __init__(self, config: TrainConfig, device: str | torch.device = "cpu"):
        torch.manual_seed(config.seed)
        n_expr = config.generator.n_expr
        self.texture = TextureGenerator(config.generator).to(device)
        self.deform = DeformationGenerator(dataclasses.replace(config.deform_generator, n_expr=n_expr)).to(
            device
        )
        self.disc = Discriminator(dataclasses.replace(config.discriminator, n_expr=n_expr)).to(device)
        g_params = list(self.texture.parameters()) + list(self.deform.parameters())
        betas = (config.beta1, config.beta2)
        self.opt_g = torch.optim.Adam(g_params, lr=config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=config.lr_d, betas=betas)
        self.expr_scale: torch.Tensor | None = None  # (K,) see TrainConfig.expr_standardize

    def state_dict(self) -> dict:
        return {k: getattr(self, k).state_dict() for k in ("texture", "deform", "disc", "opt_g", "opt_d")}

    def load_state_dict(self, state: dict) -> None:
        for k in ("texture", "deform", "disc", "opt_g", "opt_d"):
            getattr(self, k).load_state_dict(state[k])

    def edit(self, x: torch.Tensor, y_src: torch.Tensor, y_tgt: torch.Tensor, region: torch.Tensor):
        """One generator pass -> (output composited inside ``region``, mask M, flow, the warped
        input composited inside ``region``: the deformation generator's own result)."""
        flow = self.deform(x, y_src, y_tgt)
        x_in = region * warp(x, flow) + (1 - region) * x
        tex, m = self.texture(x_in, y_tgt)
        out = apply_attention(x_in, tex, m)
        return region * out + (1 - region) * x, m, flow, x_in


def _to_tensor(images: np.ndarray, device) -> torch.Tensor:
    """(B, H, W, C) uint8 -> (B, C, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 255.0


@dataclass(frozen=True)
class Batch:
    """One training batch: x (B, 3, H, W) generator input, photo (B, 3, H, W) the real crop behind
    it, y_src / y_tgt (B, K), region (B, 1, H, W) editable pixels, real (B, 3, H, W) and y_real
    (B, K): other real photos for the discriminator."""

    x: torch.Tensor
    photo: torch.Tensor
    y_src: torch.Tensor
    y_tgt: torch.Tensor
    region: torch.Tensor
    real: torch.Tensor
    y_real: torch.Tensor


def draw_batch(
    cache, config: TrainConfig, rng: np.random.Generator, lo: int, hi: int, device="cpu", idx=None
) -> Batch:
    """Sample a batch from samples ``lo..hi-1`` of ``cache`` (:class:`GanCache`), or take the
    samples ``idx`` when given (the rest - targets, real photos - is still drawn from ``rng``)."""
    B = config.batch_size
    idx = rng.integers(lo, hi, B) if idx is None else np.asarray(idx)
    real_idx = rng.integers(lo, hi, B)
    photo = cache.photo[idx]
    y_src = cache.y_src[idx].astype(np.float32)
    if getattr(cache, "y_tgt", None) is not None:
        t = rng.integers(0, cache.y_tgt.shape[1], B)
        y_cached = cache.y_tgt[idx, t].astype(np.float32)
    else:
        y_cached = cache.y_src[rng.integers(lo, hi, B)].astype(np.float32)
    if getattr(cache, "mask", None) is not None:
        region = cache.mask[idx][..., None]
    else:
        region = np.full((B, *photo.shape[1:3], 1), 255, np.uint8)
    x = photo
    other = cache.y_src[rng.integers(lo, hi, B)].astype(np.float32)
    use_cached = rng.random(B) < config.cached_target_frac
    y_tgt = np.where(use_cached[:, None], y_cached, other)
    return Batch(
        x=_to_tensor(x, device),
        photo=_to_tensor(photo, device),
        y_src=torch.from_numpy(y_src).to(device),
        y_tgt=torch.from_numpy(np.ascontiguousarray(y_tgt, np.float32)).to(device),
        region=_to_tensor(region, device),
        real=_to_tensor(cache.photo[real_idx], device),
        y_real=torch.from_numpy(cache.y_src[real_idx].astype(np.float32)).to(device),
    )


def train_step(models: Models, batch: Batch, config: TrainConfig) -> dict[str, float]:
    """One discriminator update then one generator update; returns the loss values."""
    w = config.losses
    out, m, flow, warped = models.edit(batch.x, batch.y_src, batch.y_tgt, batch.region)

    # discriminator: real photos vs edited outputs, expression head on real photos
    d_real, e_real = models.disc(batch.real)
    d_fake, _ = models.disc(out.detach())
    loss_d_adv = L.d_hinge(d_real, d_fake)
    loss_d_expr = L.expression_loss(e_real, batch.y_real, models.expr_scale)
    models.opt_d.zero_grad(set_to_none=True)
    (loss_d_adv + w.expr * loss_d_expr).backward()
    models.opt_d.step()

    # generator
    d_fake, e_fake = models.disc(out)
    terms = {
        "g_adv": L.g_hinge(d_fake),
        "g_expr": L.expression_loss(e_fake, batch.y_tgt, models.expr_scale),
        "identity": L.low_frequency_l1(out, batch.x),
        "mask": L.mask_sparsity(m, batch.region),
        "mask_tv": L.total_variation(m),
    }
    weights = {"g_adv": w.adv, "g_expr": w.expr, "identity": w.identity, "mask": w.mask, "mask_tv": w.mask_tv}
    back, m2, flow2, _ = models.edit(out, batch.y_tgt, batch.y_src, batch.region)
    # DefGAN: the deformation alone must already carry the expression (else the texture
    # generator paints it, adversarially, and the flow stays at zero)
    terms["warp_expr"] = L.expression_loss(models.disc(warped)[1], batch.y_tgt, models.expr_scale)
    weights["warp_expr"] = w.warp_expr
    terms["cycle"] = L.masked_l1(back, batch.x)
    terms["flow_tv"] = L.total_variation(flow) + L.total_variation(flow2)
    terms["flow_l2"] = L.flow_magnitude(flow) + L.flow_magnitude(flow2)
    terms["mask"] = terms["mask"] + L.mask_sparsity(m2, batch.region)
    weights.update(cycle=w.cycle, flow_tv=w.flow_tv, flow_l2=w.flow_l2)
    loss_g = sum(weights[k] * v for k, v in terms.items())
    models.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    models.opt_g.step()
    values = {k: float(v.detach()) for k, v in terms.items()}
    values.update(d_adv=loss_d_adv.item(), d_expr=loss_d_expr.item(), g_total=loss_g.item())
    return values


def _save_checkpoint(run_dir: Path, models: Models, config: TrainConfig, step: int, meta: dict) -> None:
    save_checkpoint(run_dir, {"step": step, "models": models.state_dict()})
    save_generators(
        run_dir / "generator", models.texture, models.deform, int(meta["size"]), {**meta, "step": step}
    )


def _samples(models: Models, cache, idx: np.ndarray, config: TrainConfig, device) -> np.ndarray:
    """Grid rows per held-out sample: input | output | mask."""
    b = _fixed_batch(cache, config, idx, device)
    with torch.no_grad():
        out, m, _, _ = models.edit(b.x, b.y_src, b.y_tgt, b.region)
    cols = [b.x, out, m.expand_as(out)]
    return sample_grid(cols)


def _fixed_batch(cache, config: TrainConfig, idx: np.ndarray, device) -> Batch:
    """Held-out samples ``idx`` edited to a cached target."""
    forced = dataclasses.replace(config, cached_target_frac=1.0, batch_size=len(idx))
    return draw_batch(
        cache, forced, np.random.default_rng([config.seed, 7]), 0, len(cache.photo), device, idx
    )


def warmup_discriminator(models: Models, cache, config: TrainConfig, device="cpu", progress=True) -> dict:
    """``config.disc_warmup`` steps of the discriminator's expression head alone on real training
    photos and their fitted weights; returns its expression loss on the held-out photos before and
    after (``{"holdout_before", "holdout_after", "train_last"}``), the check that it learnt."""
    n, B = len(cache.photo), config.batch_size

    def held_out() -> float:
        idx = np.arange(min(config.holdout, n))
        with torch.no_grad():
            pred = models.disc(_to_tensor(cache.photo[idx], device))[1]
        y = torch.from_numpy(cache.y_src[idx].astype(np.float32)).to(device)
        return float(L.expression_loss(pred, y, models.expr_scale))

    before, losses = held_out(), []
    for i in tqdm(range(config.disc_warmup), disable=not progress, desc="warm up D", unit="step"):
        rng = np.random.default_rng([config.seed, 1, i])
        idx = rng.integers(config.holdout, n, B)
        _, e = models.disc(_to_tensor(cache.photo[idx], device))
        y = torch.from_numpy(cache.y_src[idx].astype(np.float32)).to(device)
        loss = L.expression_loss(e, y, models.expr_scale)
        models.opt_d.zero_grad(set_to_none=True)
        (config.losses.expr * loss).backward()
        models.opt_d.step()
        losses.append(loss.item())
    tail = losses[-20:]
    return {"holdout_before": before, "holdout_after": held_out(), "train_last": float(np.mean(tail))}


def train(
    cache,
    run_dir: str | os.PathLike,
    config: TrainConfig = TrainConfig(),
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    meta: dict | None = None,
) -> TrainSummary:
    """Train (or resume training) on ``cache`` (:class:`editing.train.gan_data.GanCache`) into ``run_dir``.

    Raises:
        InputError: the cache is too small, or ``resume`` with a different config / no checkpoint,
            or a non-empty ``run_dir`` without ``resume``.
    """
    run_dir = Path(run_dir)
    n = len(cache.photo)
    n_train = n - config.holdout
    if n_train < config.batch_size:
        raise InputError(
            f"the cache has {n} samples: too few for holdout {config.holdout} + batch {config.batch_size}"
        )
    models = Models(config, device)
    state = open_run(run_dir, config, TrainConfig.from_dict, resume, device=device)
    start = 0
    if state is not None:
        models.load_state_dict(state["models"])
        start = int(state["step"])
    meta = {**(meta or {}), "size": int(cache.photo.shape[1]), "train_samples": n_train}
    if config.expr_standardize:
        sd = np.maximum(cache.y_src[config.holdout :].std(0), 0.05).astype(np.float32)
        models.expr_scale = torch.from_numpy(sd).to(device)
    if start == 0 and config.disc_warmup > 0:
        meta["disc_warmup"] = warmup_discriminator(models, cache, config, device, progress)
    holdout_idx = np.arange(min(config.holdout, config.n_samples))
    t0, last, done = time.perf_counter(), {}, start
    bar = tqdm(
        range(start, config.steps),
        initial=start,
        total=config.steps,
        disable=not progress,
        desc=f"train {config.kind}",
        unit="step",
    )
    for step in bar:
        batch = draw_batch(
            cache, config, np.random.default_rng([config.seed, step]), config.holdout, n, device
        )
        torch.manual_seed(config.seed * 1_000_003 + step)
        last = train_step(models, batch, config)
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            append_losses(run_dir / "losses.csv", done, last)
            bar.set_postfix({k: f"{last[k]:.3f}" for k in ("g_adv", "g_expr", "d_adv")})
        if done % config.checkpoint_every == 0 or done == config.steps:
            _save_checkpoint(run_dir, models, config, done, meta)
        if done % config.sample_every == 0 or done == config.steps:
            save_generators(  # a snapshot per sample grid: GAN runs can degrade late
                run_dir / "snapshots" / f"step_{done:06d}",
                models.texture,
                models.deform,
                int(meta["size"]),
                {**meta, "step": done},
            )
            write_image(
                run_dir / "samples" / f"step_{done:06d}.png",
                _samples(models, cache, holdout_idx, config, device),
            )
            plot_losses(run_dir / "losses.csv", run_dir / "losses.png")
    secs = time.perf_counter() - t0
    ips = (done - start) * config.batch_size / secs if done > start else 0.0
    return TrainSummary(run_dir, start, done, secs, ips, last)
