"""Distilling the 3D warp into the 2D baseline's deformation generator.

``G_def(I, y_src, y_tgt)`` regresses the 3D warp's backward motion of the aligned crop
(:mod:`editing.train.flow_cache`, the issue's "dense flow fields that the 3D warp path computes on
the training photos"): a Charbonnier (smooth L1) error in crop pixels, weighted by the cached face
mask (``outside`` elsewhere), plus a small total variation. A fraction of the targets is the
source expression itself, whose teacher motion is zero. The texture generator is not trained
here: the shipped bundle pairs the distilled ``G_def`` with an existing texture generator
(``texture_from``).

A run directory holds ``config.json`` (this :class:`DistillConfig`), ``checkpoint.pt`` (the
deformation generator, its optimiser and the step: what ``resume`` needs), ``generator/`` (the
shippable :func:`editing.gan.checkpoint.save_generators` bundle), ``losses.csv``, ``losses.png``
and ``samples/step_XXXXXX.png`` (held-out rows: input | teacher warp | student warp). Batches
are drawn from ``numpy.random.default_rng([seed, step])``, so a resumed run repeats the batches an
uninterrupted one would (on the same cache).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from editing.gan.checkpoint import load_generators, save_generators
from editing.gan.networks import DeformationGenerator, GeneratorConfig, TextureGenerator, warp
from editing.train.runlog import append_losses, open_run, plot_losses, sample_grid, save_checkpoint
from face3d.errors import InputError
from face3d.io import write_image


@dataclass(frozen=True)
class DistillConfig:
    """One distillation run.

    Attributes:
        steps: total optimisation steps (a resumed run continues to this number).
        batch_size: crops per step.
        lr: Adam learning rate; betas: Adam betas.
        same_frac: fraction of targets replaced by the source expression (teacher motion zero).
        zero_source: give the generator an all-zero source condition instead of the photo's fitted
            weights: the condition ``--method 2d`` gives it at inference, where a 2D method cannot
            read the photo's expression (the flow must then read it from the image).
        outside: weight of the flow error outside the cached face mask (1 inside).
        charbonnier: the error's smoothing, crop pixels (sqrt(e^2 + c^2) - c).
        tv: weight of the flow's total variation (crop pixels).
        holdout: the first ``holdout`` cache samples are never trained on (losses and grids).
        n_samples: held-out samples shown per grid.
        log_every, sample_every, checkpoint_every: in steps.
        seed: seeds the initialisation and every batch.
        deform: the deformation generator's architecture.
    """

    steps: int = 2000
    batch_size: int = 16
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    same_frac: float = 0.1
    zero_source: bool = False
    outside: float = 0.2
    charbonnier: float = 0.1
    tv: float = 0.05
    holdout: int = 32
    n_samples: int = 6
    log_every: int = 10
    sample_every: int = 200
    checkpoint_every: int = 50
    seed: int = 0
    deform: GeneratorConfig = field(
        default_factory=lambda: GeneratorConfig(kind="deform", max_flow=0.25, film=True)
    )

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.steps < 0 or self.batch_size < 1 or not 0 <= self.same_frac <= 1:
            raise InputError("steps >= 0, batch_size >= 1 and same_frac in [0, 1] are required")

    @classmethod
    def from_dict(cls, d: dict) -> DistillConfig:
        return cls(**{**d, "deform": GeneratorConfig(**d["deform"])})


@dataclass(frozen=True)
class DistillSummary:
    """What :func:`distill` did: the steps this call ran, its wall time, crops per second and the
    last logged losses (``train``: the weighted training error, ``heldout``: the same on held-out
    crops, ``heldout_epe``: their mean end-point error inside the mask, crop pixels)."""

    run_dir: Path
    first_step: int
    last_step: int
    seconds: float
    images_per_second: float
    last_losses: dict[str, float]


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def draw_batch(cache, config: DistillConfig, rng: np.random.Generator, idx=None) -> dict[str, torch.Tensor]:
    """A batch of training samples (``idx``: these samples, the first target, no source swaps):
    x (B, 3, S, S), y_src / y_tgt (B, K), flow (B, 2, F, F) teacher, weight (B, 1, F, F)."""
    n, T = len(cache.photo), cache.y_tgt.shape[1]
    fixed = idx is not None
    idx = rng.integers(config.holdout, n, config.batch_size) if idx is None else np.asarray(idx)
    t = np.zeros(len(idx), int) if fixed else rng.integers(0, T, len(idx))
    same = np.zeros(len(idx), bool) if fixed else rng.random(len(idx)) < config.same_frac
    y_src = cache.y_src[idx].astype(np.float32)
    y_tgt = np.where(same[:, None], y_src, cache.y_tgt[idx, t].astype(np.float32))
    flow = cache.flow[idx, t].astype(np.float32) * (~same)[:, None, None, None]
    Fs = flow.shape[1]
    mask = _tensor(cache.mask[idx][..., None])
    mask = F.interpolate(mask, size=(Fs, Fs), mode="area")
    if config.zero_source:
        y_src = np.zeros_like(y_src)
    return {
        "x": _tensor(cache.photo[idx]),
        "y_src": torch.from_numpy(y_src),
        "y_tgt": torch.from_numpy(np.ascontiguousarray(y_tgt)),
        "flow": torch.from_numpy(flow).permute(0, 3, 1, 2),
        "weight": config.outside + (1 - config.outside) * mask,
    }


def flow_loss(pred: torch.Tensor, batch: dict, config: DistillConfig, size: int) -> torch.Tensor:
    """Weighted Charbonnier error between the predicted flow (B, 2, S, S), area-pooled to the
    teacher's resolution, and the teacher's, in crop pixels of a ``size`` crop."""
    teacher = batch["flow"]
    pred = F.interpolate(pred, size=teacher.shape[-2:], mode="area")
    err = (pred - teacher).norm(dim=1, keepdim=True) * (size / 2)
    c = config.charbonnier
    pen = torch.sqrt(err * err + c * c) - c
    return (pen * batch["weight"]).sum() / batch["weight"].sum()


def _tv(flow: torch.Tensor, size: int) -> torch.Tensor:
    f = flow * (size / 2)
    return (f[..., 1:, :] - f[..., :-1, :]).abs().mean() + (f[..., :, 1:] - f[..., :, :-1]).abs().mean()


def heldout_losses(model: DeformationGenerator, cache, config: DistillConfig) -> dict[str, float]:
    """``heldout`` (the training loss) and ``heldout_epe`` (mean end-point error inside the mask,
    crop pixels) on the held-out samples' first targets."""
    idx = np.arange(min(config.holdout, len(cache.photo)))
    b = draw_batch(cache, config, np.random.default_rng(0), idx)
    size = b["x"].shape[-1]
    with torch.no_grad():
        pred = model(b["x"], b["y_src"], b["y_tgt"])
        loss = flow_loss(pred, b, config, size)
        pooled = F.interpolate(pred, size=b["flow"].shape[-2:], mode="area")
        inside = (b["weight"] > 0.6).float()
        epe = ((pooled - b["flow"]).norm(dim=1, keepdim=True) * (size / 2) * inside).sum() / inside.sum()
    return {"heldout": float(loss), "heldout_epe": float(epe)}


def _samples(model: DeformationGenerator, cache, config: DistillConfig) -> np.ndarray:
    """Rows per held-out sample: input | teacher warp | student warp."""
    idx = np.arange(min(config.holdout, config.n_samples, len(cache.photo)))
    b = draw_batch(cache, config, np.random.default_rng(0), idx)
    size = b["x"].shape[-2:]
    with torch.no_grad():
        pred = model(b["x"], b["y_src"], b["y_tgt"])
    teacher = F.interpolate(b["flow"], size=size, mode="bilinear", align_corners=False)
    return sample_grid([b["x"], warp(b["x"], teacher), warp(b["x"], pred)])


def _texture(texture_from) -> TextureGenerator:
    if texture_from is None:
        return TextureGenerator(GeneratorConfig())
    return load_generators(texture_from).texture


def _start(run_dir: Path, config: DistillConfig, resume: bool, init_from=None):
    """The model and optimiser (restored with ``resume``; a new run's ``G_def`` starts from the
    generator folder ``init_from`` when given) and the first step."""
    torch.manual_seed(config.seed)
    model = DeformationGenerator(config.deform)
    state = open_run(run_dir, config, DistillConfig.from_dict, resume)
    if state is None and init_from is not None:
        bundle = load_generators(init_from)
        if bundle.deform is None or bundle.deform.config != config.deform:
            raise InputError(f"--init {init_from}: its deformation generator's architecture differs")
        model.load_state_dict(bundle.deform.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas)
    start = 0
    if state is not None:
        model.load_state_dict(state["deform"])
        opt.load_state_dict(state["opt"])
        start = int(state["step"])
    return model, opt, start


def _save(run_dir: Path, model, opt, texture, step: int, size: int, meta: dict) -> None:
    save_checkpoint(run_dir, {"step": step, "deform": model.state_dict(), "opt": opt.state_dict()})
    save_generators(run_dir / "generator", texture, model, size, {**meta, "step": step})


def distill(
    cache,
    run_dir: str | os.PathLike,
    config: DistillConfig = DistillConfig(),
    resume: bool = False,
    texture_from: str | os.PathLike | None = None,
    meta: dict | None = None,
    max_seconds: float | None = None,
    init_from: str | os.PathLike | None = None,
) -> DistillSummary:
    """Train (or resume) ``G_def`` on ``cache`` (:class:`editing.train.flow_cache.FlowCache`).

    Args:
        texture_from: a generator folder whose texture generator the saved bundle carries (None: an
            untrained one, which keeps the input almost everywhere).
        max_seconds: stop (after a checkpoint) once this much wall time has passed.
        init_from: a generator folder whose ``G_def`` a new run starts from (a fine-tune; ignored
            on resume).
    Raises:
        InputError: too few samples, a non-empty ``run_dir`` without ``resume``, or a resume with
            another configuration.
    """
    run_dir = Path(run_dir)
    n = len(cache.photo)
    if n - config.holdout < 1:
        raise InputError(f"the cache has {n} samples: too few for holdout {config.holdout}")
    model, opt, start = _start(run_dir, config, resume, init_from)
    texture = _texture(texture_from)
    size = int(cache.photo.shape[1])
    meta = {**(meta or {}), "crop_scale": float(cache.config.scale), "train_samples": n - config.holdout}
    t0, last, done = time.perf_counter(), {}, start
    for step in range(start, config.steps):
        b = draw_batch(cache, config, np.random.default_rng([config.seed, step]))
        torch.manual_seed(config.seed * 1_000_003 + step)
        pred = model(b["x"], b["y_src"], b["y_tgt"])
        fl = flow_loss(pred, b, config, size)
        loss = fl + config.tv * _tv(pred, size)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        out_of_time = max_seconds is not None and time.perf_counter() - t0 > max_seconds
        if done % config.log_every == 0 or done == config.steps or out_of_time:
            last = {"train": fl.item(), "total": loss.item(), **heldout_losses(model, cache, config)}
            append_losses(run_dir / "losses.csv", done, last)
        if done % config.checkpoint_every == 0 or done == config.steps or out_of_time:
            _save(run_dir, model, opt, texture, done, size, meta)
        if done % config.sample_every == 0 or done == config.steps or out_of_time:
            write_image(run_dir / "samples" / f"step_{done:06d}.png", _samples(model, cache, config))
            plot_losses(run_dir / "losses.csv", run_dir / "losses.png")
        if out_of_time:
            break
    secs = time.perf_counter() - t0
    ips = (done - start) * config.batch_size / secs if done > start else 0.0
    return DistillSummary(run_dir, start, done, secs, ips, last)
