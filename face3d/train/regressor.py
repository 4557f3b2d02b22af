"""Training loop of the landmark/3DMM regressor on the shards of :mod:`regressor_data`.

A wall-clock budget drives everything: the learning rate follows a cosine over ``minutes``,
checkpoints (``checkpoint.pt`` + a ``latest/`` pretrained folder) are written every
``checkpoint_minutes`` and ``resume=True`` continues from the last one with the same schedule.
New shards written while training runs are picked up every ``reload_minutes``. Losses go to
``log.csv`` (one row per ``log_every`` steps, plus a validation row per checkpoint).
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from face3d.camera import euler_degrees
from face3d.eval.metrics import nme
from face3d.io import atomic_write_bytes, atomic_write_json
from face3d.model import MorphableModel
from face3d.regress.network import RegressorConfig, RegressorNet, normalise
from face3d.train.data import check_shard_size, load_shards, random_background

LOG_FIELDS = (
    "step",
    "elapsed_s",
    "lr",
    "split",
    "loss",
    "landmarks",
    "rotation",
    "centre",
    "scale",
    "identity",
    "expression",
    "confidence",
    "nme",
    "yaw_err_median",
    "img_per_s",
    "samples",
)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train`.

    Attributes:
        minutes: wall-clock training budget (the cosine schedule's length unless ``epochs``).
        epochs: when set, train this many passes over the training samples (the schedule's
            length, in steps); training stops at ``epochs`` or ``minutes``, whichever comes first.
        batch_size / lr / weight_decay / warmup_minutes: the optimiser (AdamW).
        threads: torch threads.
        device: ``"cpu"`` or ``"cuda"``: where the network trains.
        seed: RNG seed (model init and batch order).
        checkpoint_minutes / reload_minutes: checkpoint and data-reload periods.
        log_every: steps between CSV rows.
        weights: loss weights by term.
        net: :class:`RegressorConfig` of a fresh model (its ``size`` is the shards' crop side).
    """

    minutes: float = 45.0
    epochs: float | None = None
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_minutes: float = 1.0
    threads: int = 1
    device: str = "cpu"
    seed: int = 0
    checkpoint_minutes: float = 4.0
    reload_minutes: float = 6.0
    log_every: int = 20
    weights: dict = field(
        default_factory=lambda: {
            "landmarks": 10.0,
            "rotation": 1.0,
            "centre": 1.0,
            "scale": 1.0,
            "identity": 0.02,
            "expression": 0.5,
            "confidence": 0.5,
        }
    )
    net: RegressorConfig = RegressorConfig()


def losses(out: dict, batch: dict, config: RegressorConfig) -> dict[str, torch.Tensor]:
    """Loss terms of a batch (face terms averaged over the face samples only).

    ``batch``: ``landmarks`` (B, 68, 2) crop pixels, ``rotation`` (B, 3, 3), ``centre`` (B, 2),
    ``scale`` (B,), ``identity`` (B, >=K), ``expression`` (B, K_exp), ``label`` (B,) 1 = face.
    The renders' landmarks are ICT's landmark vertices, so the landmark term compares them with the
    network's ``model_landmarks`` (no landmark-convention offset).
    """
    S = config.size
    face = batch["label"] > 0
    n = face.sum().clamp(min=1)

    def masked(x):  # (B, ...) per-sample values -> mean over faces
        return (x.reshape(x.shape[0], -1).mean(1) * face).sum() / n

    K = config.n_identity
    scale_gt = batch["scale"].clamp(min=1e-3)
    return {
        "landmarks": masked((out["model_landmarks"] - batch["landmarks"]).abs() / S),
        "rotation": masked((out["rotation"] - batch["rotation"]).square()),
        "centre": masked((out["centre"] - batch["centre"]).abs() / S),
        "scale": masked((out["scale"].log() - scale_gt.log()).abs()),
        "identity": masked((out["identity"] - batch["identity"][:, :K]).square()),
        "expression": masked((out["expression"] - batch["expression"]).abs()),
        "confidence": F.binary_cross_entropy_with_logits(out["logit"], face.float()),
    }


def to_batch(data: dict, idx: np.ndarray, device="cpu") -> dict[str, torch.Tensor]:
    """The samples ``idx`` of shard arrays as float tensors on ``device``, the images normalised."""
    b = {k: torch.from_numpy(data[k][idx]) for k in data if k != "image"}
    b["image"] = normalise(torch.from_numpy(data["image"][idx]))
    return {k: (v.float() if k != "image" else v).to(device) for k, v in b.items()}


def synthetic_negatives(rng: np.random.Generator, n: int, size: int) -> torch.Tensor:
    """(n, size, size, 3) uint8 face-free images: flat colours, gradients, (blurred) noise."""
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            img = np.full((size, size, 3), rng.integers(0, 256, 3), np.uint8)
            img = np.clip(img + rng.normal(0, rng.uniform(0, 20), img.shape), 0, 255).astype(np.uint8)
        elif r < 0.55:
            img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        else:
            img = random_background(rng, [], size)
        out.append(img)
    return torch.from_numpy(np.stack(out))


@torch.no_grad()
def evaluate(net: RegressorNet, data: dict, batch_size: int = 256) -> dict[str, float]:
    """Mean NME (%), median yaw error (degrees) over the faces and mean confidence loss."""
    was = net.training
    net.eval()
    device = next(net.parameters()).device
    nmes, yaw_err, conf = [], [], []
    for s in range(0, len(data["label"]), batch_size):
        b = to_batch(data, np.arange(s, min(s + batch_size, len(data["label"]))), device)
        out = net(b["image"])
        face = b["label"] > 0
        conf.append(F.binary_cross_entropy_with_logits(out["logit"], face.float(), reduction="none"))
        if face.any():
            nmes.append(nme(out["model_landmarks"][face], b["landmarks"][face]))
            yp = euler_degrees(out["rotation"][face])[:, 0]
            yaw_err.append((yp - euler_degrees(b["rotation"][face])[:, 0]).abs())
    net.train(was)
    return {
        "nme": float(torch.cat(nmes).mean()) if nmes else float("nan"),
        "yaw_err_median": float(torch.cat(yaw_err).median()) if yaw_err else float("nan"),
        "confidence": float(torch.cat(conf).mean()),
    }


def load_split(folder: Path, val_every: int, seed: int):
    """Training and validation arrays: ``heldout_*`` shards validate when present, else every
    ``val_every``-th ``shard_*`` (whole shards, so no photo is in both), else a random 3 %."""
    paths = sorted(folder.glob("shard_*.npz"))
    held = sorted(folder.glob("heldout_*.npz"))
    if held:
        return load_shards(folder, paths=paths), load_shards(folder, paths=held)
    val_paths = [p for p in paths if int(p.stem.split("_")[1]) % val_every == val_every // 2]
    if val_paths and len(val_paths) < len(paths):
        return load_shards(folder, paths=[p for p in paths if p not in val_paths]), load_shards(
            folder, paths=val_paths
        )
    data = load_shards(folder, paths=paths)
    idx = np.random.default_rng(seed).permutation(len(data["label"]))
    n = max(1, int(len(idx) * 0.03))
    return {k: v[idx[n:]] for k, v in data.items()}, {k: v[idx[:n]] for k, v in data.items()}


def write_checkpoint(path: Path, net: RegressorNet, opt, step: int, elapsed: float, **extra) -> None:
    """Atomically write the resumable checkpoint ``path`` (model, optimiser, step, elapsed seconds and
    ``extra``) and the loadable weights beside it in ``path.parent / "latest"``."""
    import io

    buf = io.BytesIO()
    state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step, "elapsed": elapsed}
    torch.save({**state, **extra}, buf)
    atomic_write_bytes(path, buf.getvalue())
    net.save_pretrained(path.parent / "latest")


def open_log(path: Path, fields, resume: bool):
    """(file, csv.DictWriter) appending to ``path`` when resuming an existing log, else a new one
    with its header; the caller closes the file."""
    new_log = not resume or not path.is_file()
    fh = open(path, "w" if new_log else "a", newline="")
    log = csv.DictWriter(fh, fields, extrasaction="ignore")
    if new_log:
        log.writeheader()
    return fh, log


class LossWindow:
    """Running sums of the loss terms since the last ``log.csv`` train row, and the images seen."""

    def __init__(self, elapsed: float):
        self.reset(elapsed)

    def reset(self, elapsed: float) -> None:
        """Start a new window at ``elapsed`` seconds of training."""
        self.sums, self.steps, self.seen, self.start = {}, 0, 0, elapsed

    def add(self, terms: dict[str, torch.Tensor], images: int) -> None:
        """One step's loss terms (tensors) and its number of images."""
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach())
        self.steps += 1
        self.seen += images

    def means(self) -> dict[str, float]:
        """The terms' means over the window's steps (rounded as logged)."""
        return {k: round(v / self.steps, 5) for k, v in self.sums.items()}

    def images_per_second(self, elapsed: float) -> float:
        """Training throughput since the window started."""
        return self.seen / max(elapsed - self.start, 1e-9)


@dataclass
class _Run:
    """The state of one :func:`train` call: network, optimiser, progress, the data (reloaded when
    new shards appear) and the position in the current shuffled pass over it."""

    net: RegressorNet
    opt: torch.optim.Optimizer
    device: torch.device
    rng: np.random.Generator
    data: dict
    val: dict
    step: int = 0
    elapsed: float = 0.0
    order: np.ndarray | None = None
    pos: int = 0

    def shuffle(self) -> None:
        """Start a new pass over the training samples, in a random order."""
        self.order, self.pos = self.rng.permutation(len(self.data["label"])), 0

    def next_indices(self, batch_size: int) -> np.ndarray:
        """The next batch's sample indices (sorted); a new pass when this one has too few left."""
        if self.pos + batch_size > len(self.order):
            self.shuffle()
        idx = np.sort(self.order[self.pos : self.pos + batch_size])
        self.pos += batch_size
        return idx


def _setup(data_dir: Path, ckpt_path: Path, config: TrainConfig, resume: bool, init, model_dir) -> _Run:
    """Load the data (training and validation split) and build the network (``init``'s weights or a
    fresh one) and its optimiser; with ``resume`` and a checkpoint, continue from it instead."""
    data, val = load_split(data_dir, 16, config.seed)
    if init is not None:
        net = RegressorNet.from_pretrained(init)
    else:  # a fresh network takes the shards' crop size
        size = data["image"].shape[1]
        net = RegressorNet.from_model(replace(config.net, size=size), MorphableModel.from_dir(model_dir))
    device = torch.device(config.device)
    net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    run = _Run(net, opt, device, np.random.default_rng(config.seed), data, val)
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net = RegressorNet(
            RegressorConfig(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in ck["net_config"].items()}
            )
        )
        net.load_state_dict(ck["model"])
        net.to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        opt.load_state_dict(ck["optimizer"])
        run.net, run.opt, run.step, run.elapsed = net, opt, ck["step"], ck["elapsed"]
        run.rng = np.random.default_rng([config.seed, run.step])
    return run


def _learning_rate(config: TrainConfig, run: _Run, budget: float, total_steps: int | None) -> float:
    """Linear warm-up, then a cosine over the wall-clock budget (or over the steps with ``epochs``)."""
    frac = run.elapsed / budget if total_steps is None else run.step / total_steps
    warm = min(1.0, run.elapsed / max(config.warmup_minutes * 60, 1e-6))
    return config.lr * warm * 0.5 * (1 + math.cos(math.pi * frac))


def _train_step(run: _Run, idx: np.ndarray, lr: float, config: TrainConfig) -> dict[str, torch.Tensor]:
    """One optimiser step at learning rate ``lr`` on the samples ``idx``, the batch's last 1/16
    replaced by synthetic face-free images; returns the weighted ``loss`` and its terms."""
    net = run.net
    for g in run.opt.param_groups:
        g["lr"] = lr
    b = to_batch(run.data, idx, run.device)
    n_neg = max(1, len(idx) // 16)
    b["image"][-n_neg:] = normalise(synthetic_negatives(run.rng, n_neg, net.config.size)).to(run.device)
    b["label"][-n_neg:] = 0
    terms = losses(net(b["image"]), b, net.config)
    loss = sum(config.weights[k] * v for k, v in terms.items())
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    run.opt.step()
    run.step += 1
    return {"loss": loss, **terms}


def _log_train(log, log_fh, bar, run: _Run, window: LossWindow, lr: float) -> None:
    """Write the window's ``train`` row (mean terms, learning rate, throughput) and start a new window."""
    row = window.means()
    log.writerow(
        {
            "step": run.step,
            "elapsed_s": round(run.elapsed, 1),
            "lr": f"{lr:.2e}",
            "split": "train",
            "img_per_s": round(window.images_per_second(run.elapsed), 1),
            **row,
        }
    )
    log_fh.flush()
    bar.set_postfix(loss=f"{row['loss']:.3f}", lm=f"{row['landmarks'] * 100:.2f}%", step=run.step)
    window.reset(run.elapsed)


def _save(ckpt_path: Path, run: _Run, log, log_fh) -> dict[str, float]:
    """Write the checkpoint (with the network's config) and the ``val`` row; returns the evaluation."""
    write_checkpoint(ckpt_path, run.net, run.opt, run.step, run.elapsed, net_config=asdict(run.net.config))
    ev = evaluate(run.net, run.val)
    log.writerow(
        {
            "step": run.step,
            "elapsed_s": round(run.elapsed, 1),
            "split": "val",
            "samples": len(run.val["label"]),
            **{k: round(v, 4) for k, v in ev.items()},
        }
    )
    log_fh.flush()
    return ev


def _reload(run: _Run, data_dir: Path, config: TrainConfig, n_shards: int, bar) -> int:
    """Reload the data when more shards than ``n_shards`` exist (a new pass over them); returns the
    shard count."""
    if len(list(data_dir.glob("shard_*.npz"))) > n_shards:
        run.data, run.val = load_split(data_dir, 16, config.seed)
        n_shards = len(list(data_dir.glob("shard_*.npz")))
        run.shuffle()
        bar.write(f"reloaded data: {len(run.data['label'])} samples ({n_shards} shards)")
    return n_shards


def _finish(run: _Run, out_dir: Path, export, ev: dict[str, float], log_fh) -> RegressorNet:
    """Save the final weights (``final/`` and ``export``), report, close the log; the network in
    eval mode."""
    run.net.save_pretrained(out_dir / "final")
    if export is not None:
        run.net.save_pretrained(export)
    print(f"done: {run.step} steps, val NME {ev['nme']:.2f}%, median yaw err {ev['yaw_err_median']:.1f} deg")
    log_fh.close()
    return run.net.eval()


def train(
    data_dir,
    out_dir,
    config: TrainConfig = TrainConfig(),
    resume: bool = False,
    export=None,
    progress: bool = True,
    init=None,
    model_dir=None,
) -> RegressorNet:
    """Train (or continue training) the regressor; returns the final network (eval mode).

    Args:
        data_dir: folder of ``shard_*.npz`` (and optional ``heldout_*.npz``) files.
        out_dir: run folder: ``checkpoint.pt``, ``latest/``, ``final/``, ``log.csv``.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists.
        export: also :meth:`~RegressorNet.save_pretrained` the final weights here.
        init: start from these pretrained weights (a ``save_pretrained`` folder) instead of a
            fresh network (fine-tuning; ignored when resuming from a checkpoint).
        model_dir: the ICT model (:meth:`MorphableModel.from_dir`) whose landmark rows a fresh
            network carries.
    """
    from tqdm import tqdm

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out_dir, data_dir = Path(out_dir), Path(data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"
    run = _setup(data_dir, ckpt_path, config, resume, init, model_dir)
    atomic_write_json(out_dir / "train_config.json", asdict(config))
    run.net.train()
    check_shard_size(run.data, run.net.config.size, data_dir)
    n_shards = len(list(data_dir.glob("shard_*.npz")))
    budget = config.minutes * 60
    total_steps = (
        None
        if config.epochs is None
        else max(1, round(config.epochs * len(run.data["label"]) / config.batch_size))
    )
    log_fh, log = open_log(out_dir / "log.csv", LOG_FIELDS, resume)
    bar = tqdm(
        total=int(budget), initial=int(run.elapsed), desc="train regressor", unit="s", disable=not progress
    )
    t_last = time.perf_counter()
    last_ckpt = last_reload = run.elapsed
    window = LossWindow(run.elapsed)
    run.shuffle()
    while run.elapsed < budget and (total_steps is None or run.step < total_steps):
        idx = run.next_indices(config.batch_size)
        lr = _learning_rate(config, run, budget, total_steps)
        window.add(_train_step(run, idx, lr, config), len(idx))
        now = time.perf_counter()
        dt, t_last = now - t_last, now
        run.elapsed += dt
        bar.update(int(run.elapsed) - bar.n)
        if run.step % config.log_every == 0:
            _log_train(log, log_fh, bar, run, window, lr)
        if run.elapsed - last_ckpt >= config.checkpoint_minutes * 60:
            ev = _save(ckpt_path, run, log, log_fh)
            bar.write(
                f"step {run.step} ({run.elapsed / 60:.1f} min, "
                f"{run.step * config.batch_size / run.elapsed:.0f} img/s): "
                f"val NME {ev['nme']:.2f}% median yaw err {ev['yaw_err_median']:.1f} deg"
            )
            last_ckpt = run.elapsed
            t_last = time.perf_counter()  # evaluation time is not training time
        if run.elapsed - last_reload >= config.reload_minutes * 60:
            last_reload = run.elapsed
            n_shards = _reload(run, data_dir, config, n_shards, bar)
            t_last = time.perf_counter()
    bar.close()
    ev = _save(ckpt_path, run, log, log_fh)
    return _finish(run, out_dir, export, ev, log_fh)
