"""Fine-tuning the landmark/3DMM regressor on real large-pose faces (the AFLW2000-3D dev train half).

:func:`finetune` mixes each batch half AFLW crops (:class:`face3d.eval.aflw_crops.AFLWCrops`;
landmark + weak yaw loss, priors on identity and expression: no 3DMM labels) and half synthetic
shards (the full :func:`face3d.train.regressor.losses`), plus turned AFLW crops for the
upright head (:mod:`face3d.regress.upright`) and face-free windows of the AFLW photos for
the face confidence (:mod:`face3d.train.negatives`), on a wall-clock cosine schedule with
resumable checkpoints, like :func:`face3d.train.regressor.train`. Before the first step
(``FinetuneConfig.calibrate``) the network's landmark-convention offset is fitted to the AFLW train
crops (:mod:`face3d.train.convention`): the AFLW landmark loss then compares AFLW's
points with the offset landmarks, the synthetic loss ICT's with the offset-free ones, so the two
sources no longer pull the jaw two ways.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from face3d.eval.aflw_crops import AFLWCrops, AugConfig
from face3d.eval.face_free import NegativeConfig
from face3d.io import atomic_write_json
from face3d.regress.network import RegressorNet, normalise
from face3d.regress.upright import upright_batch
from face3d.train.aflw import AFLW_WEIGHTS, aflw_losses, evaluate_crops
from face3d.train.average import ema_copy, ema_update
from face3d.train.convention import calibrate_offset
from face3d.train.data import check_shard_size, load_shards
from face3d.train.negatives import mine_negatives
from face3d.train.regressor import (
    LossWindow,
    TrainConfig,
    evaluate,
    load_split,
    losses,
    open_log,
    synthetic_negatives,
    to_batch,
    write_checkpoint,
)


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of :func:`finetune` (batch = ``aflw_batch`` AFLW + ``synthetic_batch`` synthetic)."""

    minutes: float = 20.0
    aflw_batch: int = 32
    synthetic_batch: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_minutes: float = 0.5
    threads: int = 1
    seed: int = 0
    checkpoint_minutes: float = 4.0
    log_every: int = 20
    aflw_weight: float = 1.0  # the AFLW loss relative to the synthetic one
    upright_batch: int = 8  # extra AFLW crops per batch, turned, for the upright head
    upright_weight: float = 0.2  # weight of the upright head's cross-entropy
    upright_turns: tuple[int, ...] = (1, 2, 3)  # the quarter turns drawn for them (0: upright crops too)
    upright_aug: AugConfig | None = None  # their augmentation (None: ``aug``)
    negative_batch: int = 0  # extra face-free windows of the AFLW photos per batch (regressor_negatives);
    # with them, the upright head's crops left upright (jittered) also train the confidence as faces
    negative_weight: float = 1.0  # weight of their confidence loss (label 0)
    negative_pool: int = 0  # > negative_batch: draw this many, train on the most face-like (mining)
    negatives: NegativeConfig = NegativeConfig()  # how they are drawn
    aug: AugConfig = AugConfig()
    calibrate: bool = True  # fit the landmark-convention offset on the AFLW crops first
    ema: float = 0.0  # > 0: also keep an exponential moving average of the weights with this decay
    # per step (regressor_average.ema_update), written to ``latest_ema/`` and ``final_ema/``


LOG_FIELDS = tuple(
    "step elapsed_s lr split loss syn_loss aflw_loss aflw_landmarks yaw syn_landmarks img_per_s nme "
    "yaw_err_median nme_bin0 nme_bin1 nme_bin2 nme_balanced upright negative".split()
)

_SYNTHETIC_WEIGHTS = TrainConfig().weights  # the synthetic loss terms are weighted as in pretraining


@dataclass
class _Run:
    """The state of one :func:`finetune` call: network, optimiser, the weights' moving average (or
    None), progress (steps, seconds of training) and the run folder."""

    net: RegressorNet
    opt: torch.optim.Optimizer
    ema: RegressorNet | None
    step: int
    elapsed: float
    out_dir: Path


def _setup(init, aflw: AFLWCrops, out_dir: Path, config: FinetuneConfig, resume: bool) -> _Run:
    """The network from ``init`` and its optimiser, continued from ``out_dir``'s checkpoint when
    resuming (its moving average too), else (``config.calibrate``) with the landmark-convention
    offset fitted to the unaugmented AFLW crops."""
    ckpt_path = out_dir / "checkpoint.pt"
    net = RegressorNet.from_pretrained(init)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step, elapsed, ck = 0, 0.0, {}
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, elapsed = ck["step"], ck["elapsed"]
    elif config.calibrate:
        crops, landmarks, _ = aflw.unaugmented()
        offset = calibrate_offset(net, crops, landmarks)
        net.lm_offset.copy_(offset)
        size = offset.norm(dim=-1)
        print(f"landmark-convention offset: mean {size.mean():.2f} cm, max {size.max():.2f} cm")
    ema = ema_copy(net) if config.ema else None
    if ema is not None and "ema" in ck:
        ema.load_state_dict(ck["ema"])
    return _Run(net, opt, ema, step, elapsed, out_dir)


def _load_synthetic(synthetic_dir, size: int, seed: int) -> tuple[dict, dict, list[Path], list[int]]:
    """The synthetic training samples (the first folder's training shards and all shards of the
    others), the first folder's validation samples, the folders and their training sample counts;
    every folder's crops must be ``size`` pixels."""
    dirs = (
        [Path(synthetic_dir)] if isinstance(synthetic_dir, (str, Path)) else [Path(d) for d in synthetic_dir]
    )
    syn, syn_val = load_split(dirs[0], 16, seed)
    check_shard_size(syn, size, dirs[0])
    counts = [len(syn["label"])]
    for d in dirs[1:]:
        extra = load_shards(d)
        check_shard_size(extra, size, d)
        counts.append(len(extra["label"]))
        syn = {k: np.concatenate([v, extra[k]]) for k, v in syn.items()}
    return syn, syn_val, dirs, counts


def _upright_loss(out: dict, face_label: torch.Tensor, turns: np.ndarray, n_a: int) -> torch.Tensor:
    """Cross-entropy of the upright head over the faces: the upright AFLW and synthetic crops (the
    first ``n_a`` + ``len(face_label)`` outputs) are turn 0, the turned AFLW crops after them theirs."""
    n_as, n_t = n_a + len(face_label), len(turns)
    ones = torch.ones(n_a + n_t, dtype=torch.bool)
    faces = torch.cat([ones[:n_a], face_label > 0.5, ones[n_a:]])
    labels = torch.cat([torch.zeros(n_as, dtype=torch.long), torch.from_numpy(turns)])
    return F.cross_entropy(out["upright"][: n_as + n_t][faces], labels[faces])


def _negative_loss(out: dict, turns: np.ndarray, n_as: int, n_neg: int) -> torch.Tensor:
    """Face-confidence loss: the face-free windows (the last ``n_neg`` outputs) are 0, the upright
    head's crops left upright (turn 0, after the first ``n_as``) are faces, 1."""
    n_t = len(turns)
    upright = torch.from_numpy(turns == 0)
    logit = torch.cat([out["logit"][n_as : n_as + n_t][upright], out["logit"][n_as + n_t :]])
    target = torch.cat([torch.ones(int(upright.sum())), torch.zeros(n_neg)])
    return F.binary_cross_entropy_with_logits(logit, target)


def _batch_loss(net: RegressorNet, aflw: AFLWCrops, syn: dict, rng, config: FinetuneConfig):
    """Draw one mixed batch (AFLW crops, synthetic samples with a few synthetic negatives, turned
    AFLW crops, face-free windows) and compute its loss. Returns (loss, the logged terms, images)."""
    n_a, n_s = config.aflw_batch, config.synthetic_batch
    ab = {k: torch.from_numpy(v) for k, v in aflw.batch(rng, n_a).items()}
    sb = to_batch(syn, np.sort(rng.choice(len(syn["label"]), n_s, replace=False)))
    n_neg = max(1, n_s // 16)
    sb["image"][-n_neg:] = normalise(synthetic_negatives(rng, n_neg, net.config.size))
    sb["label"][-n_neg:] = 0
    turned, turns = upright_batch(aflw, rng, config.upright_batch, config.upright_turns, config.upright_aug)
    negatives = mine_negatives(net, aflw, rng, config.negative_batch, config.negative_pool, config.negatives)
    extra = normalise(torch.from_numpy(np.concatenate([turned, negatives])))
    out = net(torch.cat([normalise(ab["image"]), sb["image"], extra]))
    n_as, n_t = n_a + n_s, len(turns)
    a_terms = aflw_losses({k: v[:n_a] for k, v in out.items()}, ab, net.config.size)
    s_terms = losses({k: v[n_a:n_as] for k, v in out.items()}, sb, net.config)
    a_loss = sum(AFLW_WEIGHTS[k] * v for k, v in a_terms.items())
    s_loss = sum(_SYNTHETIC_WEIGHTS[k] * v for k, v in s_terms.items())
    loss = config.aflw_weight * a_loss + s_loss
    logged = {}
    if config.upright_batch:  # upright AFLW and synthetic faces: turn 0; the turned crops: theirs
        logged["upright"] = _upright_loss(out, sb["label"], turns, n_a)
        loss = loss + config.upright_weight * logged["upright"]
    if config.negative_batch:  # face-free windows: confidence 0; the upright head's upright crops: 1
        logged["negative"] = _negative_loss(out, turns, n_as, config.negative_batch)
        loss = loss + config.negative_weight * logged["negative"]
    logged.update(loss=loss, syn_loss=s_loss, aflw_loss=a_loss, aflw_landmarks=a_terms["landmarks"])
    logged.update(yaw=a_terms["yaw"], syn_landmarks=s_terms["landmarks"])
    return loss, logged, n_as + n_t + config.negative_batch


def _train_step(run: _Run, aflw: AFLWCrops, syn: dict, rng, lr: float, config: FinetuneConfig):
    """One optimiser step at learning rate ``lr`` (and the moving average's update); returns the
    logged loss terms and the number of images."""
    for g in run.opt.param_groups:
        g["lr"] = lr
    loss, logged, images = _batch_loss(run.net, aflw, syn, rng, config)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.net.parameters(), 5.0)
    run.opt.step()
    if run.ema is not None:
        ema_update(run.ema, run.net, config.ema)
    run.step += 1
    return logged, images


def _log_train(log, log_fh, bar, run: _Run, window: LossWindow, lr: float) -> None:
    """Write the window's ``train`` row (mean terms, learning rate, throughput) and start a new window."""
    row = window.means()
    ips = window.images_per_second(run.elapsed)
    r = {"step": run.step, "elapsed_s": round(run.elapsed, 1), "lr": f"{lr:.2e}", "img_per_s": round(ips, 1)}
    log.writerow({**r, "split": "train", **row})
    log_fh.flush()
    bar.set_postfix(loss=f"{row['loss']:.3f}", aflw=f"{row['aflw_landmarks'] * 100:.2f}%", ips=f"{ips:.0f}")
    window.reset(run.elapsed)


def _save(run: _Run, syn_val: dict, aflw: AFLWCrops, log, log_fh) -> tuple[dict, dict]:
    """Write the checkpoint (with the moving average) and the evaluation rows: ``val`` (synthetic
    validation samples), ``aflw_train`` (unaugmented AFLW train crops) and, with a moving average,
    ``aflw_train_ema`` (and its ``latest_ema/`` folder). Returns the first two evaluations."""
    ema = run.ema
    extra = {"ema": ema.state_dict()} if ema else {}
    write_checkpoint(run.out_dir / "checkpoint.pt", run.net, run.opt, run.step, run.elapsed, **extra)
    ev, ev_a = evaluate(run.net, syn_val), evaluate_crops(run.net, aflw)
    r = {"step": run.step, "elapsed_s": round(run.elapsed, 1)}
    log.writerow({**r, "split": "val", **{k: round(v, 4) for k, v in ev.items()}})
    log.writerow({**r, "split": "aflw_train", **{k: round(v, 4) for k, v in ev_a.items()}})
    if ema is not None:
        ema.save_pretrained(run.out_dir / "latest_ema")
        ev_e = evaluate_crops(ema, aflw)
        log.writerow({**r, "split": "aflw_train_ema", **{k: round(v, 4) for k, v in ev_e.items()}})
    log_fh.flush()
    return ev, ev_a


def _finish(run: _Run, ev: dict, ev_a: dict, log_fh) -> RegressorNet:
    """Save the final weights (``final/``, ``final_ema/``), report, close the log; the network in
    eval mode."""
    run.net.save_pretrained(run.out_dir / "final")
    if run.ema is not None:
        run.ema.save_pretrained(run.out_dir / "final_ema")
    print(f"done: {run.step} steps; synthetic val NME {ev['nme']:.2f}%; AFLW train crops {ev_a}")
    log_fh.close()
    return run.net.eval()


def finetune(
    aflw: AFLWCrops,
    synthetic_dir,
    out_dir,
    init,
    config: FinetuneConfig = FinetuneConfig(),
    resume: bool = False,
    progress: bool = True,
) -> RegressorNet:
    """Fine-tune ``init`` (a pretrained folder) into ``out_dir``; returns the network (eval mode).

    ``synthetic_dir``: a synthetic shard folder (its validation shards validate), or a list of
    them: the training shards of the others (e.g. :func:`face3d.train.profile.profile_labelled`'s
    renders of the AFLW train half) are added to the first's.

    ``out_dir`` gets ``checkpoint.pt`` (resumable: model, optimiser, step, elapsed seconds),
    ``latest/`` and, at the end, ``final/`` (pretrained folders), ``log.csv`` (train rows; per
    checkpoint a ``val`` row on the synthetic validation shards and an ``aflw_train`` row on the
    unaugmented AFLW train crops) and ``finetune_config.json``. With ``config.ema`` the weights'
    moving average is kept too (in the checkpoint, ``latest_ema/``, ``final_ema/`` and an
    ``aflw_train_ema`` log row). The AFLW held-out half is not used.
    """
    from tqdm import tqdm

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    aflw = copy.copy(aflw)  # the same images, augmented as ``config.aug`` says
    aflw.aug = config.aug
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _setup(init, aflw, out_dir, config, resume)
    rng = np.random.default_rng([config.seed, run.step])
    syn, syn_val, dirs, counts = _load_synthetic(synthetic_dir, run.net.config.size, config.seed)
    record = {"init": str(init), "synthetic": [str(d) for d in dirs], "synthetic_samples": counts}
    atomic_write_json(
        out_dir / "finetune_config.json", {**asdict(config), **record, "aflw_images": len(aflw)}
    )
    log_fh, log = open_log(out_dir / "log.csv", LOG_FIELDS, resume)
    run.net.train()
    budget = config.minutes * 60
    bar = tqdm(total=int(budget), initial=int(run.elapsed), desc="finetune", unit="s", disable=not progress)
    t_last, last_ckpt = time.perf_counter(), run.elapsed
    window = LossWindow(run.elapsed)
    while run.elapsed < budget:
        warm = min(1.0, run.elapsed / max(config.warmup_minutes * 60, 1e-6))
        lr = config.lr * warm * 0.5 * (1 + math.cos(math.pi * run.elapsed / budget))
        window.add(*_train_step(run, aflw, syn, rng, lr, config))
        now = time.perf_counter()
        run.elapsed, t_last = run.elapsed + now - t_last, now
        bar.update(int(run.elapsed) - bar.n)
        if run.step % config.log_every == 0:
            _log_train(log, log_fh, bar, run, window, lr)
        if run.elapsed - last_ckpt >= config.checkpoint_minutes * 60:
            ev, ev_a = _save(run, syn_val, aflw, log, log_fh)
            bar.write(
                f"step {run.step} ({run.elapsed / 60:.1f} min): synthetic val NME {ev['nme']:.2f}%, "
                f"AFLW train crops NME {ev_a['nme_balanced']:.2f}% balanced"
            )
            last_ckpt, t_last = run.elapsed, time.perf_counter()
    bar.close()
    ev, ev_a = _save(run, syn_val, aflw, log, log_fh)
    return _finish(run, ev, ev_a, log_fh)
