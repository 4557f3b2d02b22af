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

The run stops when the held-out cycle error stops falling (``patience`` evaluations without a new
best), or at ``steps``. A run folder holds ``config.json``, ``checkpoint.pt`` (everything
``--resume`` needs, written every ``checkpoint_minutes``), ``generator/`` (the best held-out
weights, :func:`editing.gan.checkpoint.save_generators`), ``losses.csv``/``losses.png``,
``heldout.csv`` and ``samples/step_XXXXXX.png``. Batches come from
``numpy.random.default_rng([seed, step])``, so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from editing.compare.perceptual import FerPerceptual
from editing.gan.checkpoint import save_generators
from editing.gan.networks import (
    Discriminator,
    DiscriminatorConfig,
    GeneratorConfig,
    TextureGenerator,
    apply_attention,
)
from editing.gan.refine import synthesized_region
from editing.train import losses as L
from editing.train.runlog import append_losses, open_run, plot_losses, sample_grid, save_checkpoint
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
    """

    l1: float = 10.0
    perceptual: float = 1.0
    adv: float = 0.3
    mask: float = 1.0
    mask_tv: float = 0.1


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

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1 or not 0 < self.holdout_frac < 1 or self.eval_every < 1:
            raise InputError(
                "steps >= 0, batch_size >= 1, 0 < holdout_frac < 1 and eval_every >= 1 are required"
            )
        if self.generator.extra_inputs != 1:
            raise InputError("the cycle-trained texture generator takes 1 extra input (the synthesised mask)")

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


def mirror_permutation(names: tuple[str, ...]) -> np.ndarray:
    """Indices that swap each left expression weight with its right twin (mirrored image)."""
    swaps = {
        "jawLeft": "jawRight",
        "jawRight": "jawLeft",
        "mouthLeft": "mouthRight",
        "mouthRight": "mouthLeft",
    }
    index = {n: i for i, n in enumerate(names)}

    def twin(n: str) -> str:
        if n in swaps:
            return swaps[n]
        if n.endswith("_L"):
            return n[:-2] + "_R"
        return n[:-2] + "_L" if n.endswith("_R") else n

    return np.array([index.get(twin(n), i) for i, n in enumerate(names)])


def holdout_mask(names: tuple[str, ...], frac: float) -> np.ndarray:
    """(N,) bool: the held-out samples, chosen by a hash of the name (stable as the cache grows)."""
    h = [int(hashlib.sha1(n.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF for n in names]
    return np.array(h) < frac


def paste_weights(synth: np.ndarray) -> np.ndarray:
    """(N, S, S) uint8 synthesised masks -> (N, S, S) float32 paste-back weights (the inference
    rule: :func:`editing.gan.refine.synthesized_region`)."""
    return np.stack([synthesized_region(s >= 128)[1] for s in synth]).astype(np.float32)


@dataclass
class _Data:
    photo: torch.Tensor  # (N, 3, S, S) uint8
    cycle: torch.Tensor
    synth: torch.Tensor  # (N, 1, S, S) float32 in [0, 1]
    alpha: torch.Tensor
    weight: torch.Tensor  # mouth region or pasted pixels
    y: torch.Tensor  # (N, K)
    centre: np.ndarray  # (N, 2) mouth centre, crop pixels (x, y)


def _prepare(cache) -> _Data:
    to_img = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)  # noqa: E731
    alpha = paste_weights(cache.synth)
    mouth = cache.mouth.astype(np.float32) / 255
    ys, xs = np.mgrid[: mouth.shape[1], : mouth.shape[2]]
    m = mouth + 1e-6
    centre = np.stack([(m * xs).sum((1, 2)) / m.sum((1, 2)), (m * ys).sum((1, 2)) / m.sum((1, 2))], 1)
    return _Data(
        photo=to_img(cache.photo),
        cycle=to_img(cache.cycle),
        synth=torch.from_numpy(cache.synth.astype(np.float32) / 255)[:, None],
        alpha=torch.from_numpy(alpha)[:, None],
        weight=torch.from_numpy(np.maximum(mouth, alpha))[:, None],
        y=torch.from_numpy(cache.y.astype(np.float32)),
        centre=centre,
    )


def _batch(data: _Data, idx: np.ndarray, flip: np.ndarray, perm: np.ndarray, device) -> dict:
    b = {
        "photo": data.photo[idx].float() / 255,
        "cycle": data.cycle[idx].float() / 255,
        "synth": data.synth[idx],
        "alpha": data.alpha[idx],
        "weight": data.weight[idx],
        "y": data.y[idx],
    }
    centre = data.centre[idx].copy()
    if flip.any():
        f = torch.from_numpy(flip)
        for k in ("photo", "cycle", "synth", "alpha", "weight"):
            b[k] = torch.where(f[:, None, None, None], b[k].flip(-1), b[k])
        b["y"] = torch.where(f[:, None], b["y"][:, perm], b["y"])
        centre[flip, 0] = data.photo.shape[-1] - 1 - centre[flip, 0]
    b = {k: v.to(device) for k, v in b.items()}
    b["centre"] = centre
    return b


def _patches(images: torch.Tensor, centre: np.ndarray, side: int) -> torch.Tensor:
    S = images.shape[-1]
    out = []
    for img, (cx, cy) in zip(images, centre, strict=True):
        x0 = int(np.clip(round(cx) - side // 2, 0, S - side))
        y0 = int(np.clip(round(cy) - side // 2, 0, S - side))
        out.append(img[:, y0 : y0 + side, x0 : x0 + side])
    return torch.stack(out)


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


def train_step(models: TextureModels, b: dict) -> dict[str, float]:
    """One discriminator and one generator update on batch ``b``; returns the loss terms."""
    cfg, w = models.config, models.config.losses
    pasted, m = models.refine(b)
    real = _patches(b["photo"], b["centre"], cfg.patch)
    fake = _patches(pasted, b["centre"], cfg.patch)
    loss_d = L.d_hinge(models.disc(real)[0], models.disc(fake.detach())[0])
    models.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    models.opt_d.step()
    terms = {
        "l1": L.masked_l1(pasted, b["photo"], b["weight"]),
        "perceptual": models.perceptual(pasted, b["photo"], b["weight"]),
        "adv": L.g_hinge(models.disc(fake)[0]),
        "mask": L.mask_sparsity(m, 1 - b["alpha"]),
        "mask_tv": L.total_variation(m),
    }
    loss = sum(getattr(w, k) * v for k, v in terms.items())
    models.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    models.opt_g.step()
    return {**{k: float(v.detach()) for k, v in terms.items()}, "d": loss_d.item(), "g": loss.item()}


def _psnr(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    mse = (((a - b) ** 2) * weight).sum((1, 2, 3)) / (weight.sum((1, 2, 3)) * 3).clamp(min=1e-6)
    return 10 * torch.log10(1 / mse.clamp(min=1e-10))


def evaluate(models: TextureModels, data: _Data, idx: np.ndarray, device, batch: int = 32) -> dict:
    """Held-out mouth-region L1 and PSNR of the generator's paste and of the cycle itself."""
    l1, psnr, base = [], [], []
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            part = idx[s : s + batch]
            b = _batch(data, part, np.zeros(len(part), bool), np.arange(1), device)
            pasted, _ = models.refine(b)
            mouth = b["weight"]
            l1.append(((pasted - b["photo"]).abs() * mouth).sum((1, 2, 3)) / (mouth.sum((1, 2, 3)) * 3))
            psnr.append(_psnr(pasted, b["photo"], mouth))
            base.append(_psnr(b["cycle"], b["photo"], mouth))
    l1_all, p, q = torch.cat(l1), torch.cat(psnr), torch.cat(base)
    return {
        "l1": float(l1_all.mean()),
        "psnr": float(p.median()),
        "psnr_cycle": float(q.median()),
        "gain_db": float((p - q).mean()),
    }


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
        InputError: too few samples, a run already in ``run_dir`` without ``resume``, or ``resume``
            with another configuration.
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
    data, perm = _prepare(cache), mirror_permutation(cache.expression_names)
    meta = {**(meta or {}), "size": int(cache.photo.shape[1]), "train_samples": int(len(train_idx))}
    start, step = int(state["step"]), int(state["step"])
    t0, last_ckpt, last, stopped = time.perf_counter(), time.perf_counter(), {}, "steps"
    bar = tqdm(
        range(start, config.steps),
        initial=start,
        total=config.steps,
        disable=not progress,
        desc="train texture",
    )
    for step in bar:
        rng = np.random.default_rng([config.seed, step])
        idx = train_idx[rng.integers(0, len(train_idx), config.batch_size)]
        flip = (rng.random(config.batch_size) < 0.5) & config.flip
        torch.manual_seed(config.seed * 1_000_003 + step)
        last = train_step(models, _batch(data, idx, flip, perm, device))
        step += 1
        if step % config.log_every == 0:
            append_losses(run_dir / "losses.csv", step, last)
            bar.set_postfix({k: f"{last[k]:.3f}" for k in ("l1", "adv", "d")})
        if step % config.sample_every == 0:
            b = _batch(data, held_idx[:6], np.zeros(min(6, len(held_idx)), bool), perm, device)
            with torch.no_grad():
                pasted, m = models.refine(b)
            write_image(
                run_dir / "samples" / f"step_{step:06d}.png",
                sample_grid([b["cycle"], pasted, m.expand_as(pasted), b["photo"]]),
            )
            plot_losses(run_dir / "losses.csv", run_dir / "losses.png")
        if step % config.eval_every == 0:
            ev = evaluate(models, data, held_idx, device)
            append_losses(run_dir / "heldout.csv", step, ev)
            if state["best"] is None or ev["l1"] < state["best"]["l1"]:
                state["best"], state["bad_evals"] = {**ev, "step": step}, 0
                save_generators(
                    run_dir / "generator",
                    models.gen,
                    None,
                    meta["size"],
                    {**meta, "step": step, "heldout": ev},
                )
            else:
                state["bad_evals"] += 1
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
