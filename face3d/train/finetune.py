"""Fine-tuning the landmark/3DMM regressor on real large-pose faces (the AFLW2000-3D dev train half).

:func:`finetune` mixes each batch half AFLW crops (:class:`face3d.train.aflw.AFLWCrops`;
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

from face3d.io import atomic_write_json
from face3d.regress.network import RegressorNet, normalise
from face3d.regress.upright import upright_batch
from face3d.train.aflw import AFLW_WEIGHTS, AFLWCrops, AugConfig, aflw_losses, evaluate_crops
from face3d.train.average import ema_copy, ema_update
from face3d.train.convention import calibrate_offset
from face3d.train.data import check_shard_size, load_shards
from face3d.train.negatives import NegativeConfig, mine_negatives
from face3d.train.regressor import (
    TrainConfig,
    _load,
    _synthetic_negatives,
    _to_batch,
    evaluate,
    losses,
    open_log,
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
    rng = np.random.default_rng([config.seed, step])
    dirs = (
        [Path(synthetic_dir)] if isinstance(synthetic_dir, (str, Path)) else [Path(d) for d in synthetic_dir]
    )
    syn, syn_val = _load(dirs[0], 16, config.seed)
    check_shard_size(syn, net.config.size, dirs[0])
    counts = [len(syn["label"])]
    for d in dirs[1:]:
        extra = load_shards(d)
        check_shard_size(extra, net.config.size, d)
        counts.append(len(extra["label"]))
        syn = {k: np.concatenate([v, extra[k]]) for k, v in syn.items()}
    atomic_write_json(
        out_dir / "finetune_config.json",
        {
            **asdict(config),
            "init": str(init),
            "synthetic": [str(d) for d in dirs],
            "synthetic_samples": counts,
            "aflw_images": len(aflw),
        },
    )
    syn_w = TrainConfig().weights
    log_fh, log = open_log(out_dir / "log.csv", LOG_FIELDS, resume)

    def save():
        write_checkpoint(ckpt_path, net, opt, step, elapsed, **({"ema": ema.state_dict()} if ema else {}))
        ev, ev_a = evaluate(net, syn_val), evaluate_crops(net, aflw)
        r = {"step": step, "elapsed_s": round(elapsed, 1)}
        log.writerow({**r, "split": "val", **{k: round(v, 4) for k, v in ev.items()}})
        log.writerow({**r, "split": "aflw_train", **{k: round(v, 4) for k, v in ev_a.items()}})
        if ema is not None:
            ema.save_pretrained(out_dir / "latest_ema")
            ev_e = evaluate_crops(ema, aflw)
            log.writerow({**r, "split": "aflw_train_ema", **{k: round(v, 4) for k, v in ev_e.items()}})
        log_fh.flush()
        return ev, ev_a

    net.train()
    budget = config.minutes * 60
    bar = tqdm(total=int(budget), initial=int(elapsed), desc="finetune", unit="s", disable=not progress)
    t_last, last_ckpt = time.perf_counter(), elapsed
    acc, acc_n, seen, win_start = {}, 0, 0, elapsed
    n_a, n_s = config.aflw_batch, config.synthetic_batch
    while elapsed < budget:
        warm = min(1.0, elapsed / max(config.warmup_minutes * 60, 1e-6))
        lr = config.lr * warm * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
        for g in opt.param_groups:
            g["lr"] = lr
        ab = {k: torch.from_numpy(v) for k, v in aflw.batch(rng, n_a).items()}
        sb = _to_batch(syn, np.sort(rng.choice(len(syn["label"]), n_s, replace=False)))
        n_neg = max(1, n_s // 16)
        sb["image"][-n_neg:] = normalise(_synthetic_negatives(rng, n_neg, net.config.size))
        sb["label"][-n_neg:] = 0
        turned, turns = upright_batch(
            aflw, rng, config.upright_batch, config.upright_turns, config.upright_aug
        )
        negatives = mine_negatives(
            net, aflw, rng, config.negative_batch, config.negative_pool, config.negatives
        )
        extra = normalise(torch.from_numpy(np.concatenate([turned, negatives])))
        out = net(torch.cat([normalise(ab["image"]), sb["image"], extra]))
        n_as, n_t = n_a + n_s, len(turns)
        a_terms = aflw_losses({k: v[:n_a] for k, v in out.items()}, ab, net.config.size)
        s_terms = losses({k: v[n_a:n_as] for k, v in out.items()}, sb, net.config)
        a_loss = sum(AFLW_WEIGHTS[k] * v for k, v in a_terms.items())
        s_loss = sum(syn_w[k] * v for k, v in s_terms.items())
        loss = config.aflw_weight * a_loss + s_loss
        if config.upright_batch:  # upright AFLW and synthetic faces: turn 0; the turned crops: theirs
            ones = torch.ones(n_a + n_t, dtype=torch.bool)
            faces = torch.cat([ones[:n_a], sb["label"] > 0.5, ones[n_a:]])
            labels = torch.cat([torch.zeros(n_as, dtype=torch.long), torch.from_numpy(turns)])
            u_loss = F.cross_entropy(out["upright"][: n_as + n_t][faces], labels[faces])
            loss = loss + config.upright_weight * u_loss
            acc["upright"] = acc.get("upright", 0.0) + float(u_loss.detach())
        if config.negative_batch:  # face-free windows: confidence 0; the upright head's upright crops: 1
            upright = torch.from_numpy(turns == 0)
            logit = torch.cat([out["logit"][n_as : n_as + n_t][upright], out["logit"][n_as + n_t :]])
            target = torch.cat([torch.ones(int(upright.sum())), torch.zeros(config.negative_batch)])
            n_loss = F.binary_cross_entropy_with_logits(logit, target)
            loss = loss + config.negative_weight * n_loss
            acc["negative"] = acc.get("negative", 0.0) + float(n_loss.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        if ema is not None:
            ema_update(ema, net, config.ema)
        step, seen, acc_n = step + 1, seen + n_as + n_t + config.negative_batch, acc_n + 1
        vals = dict(loss=loss, syn_loss=s_loss, aflw_loss=a_loss, aflw_landmarks=a_terms["landmarks"])
        vals.update(yaw=a_terms["yaw"], syn_landmarks=s_terms["landmarks"])
        for k, v in vals.items():
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        now = time.perf_counter()
        elapsed, t_last = elapsed + now - t_last, now
        bar.update(int(elapsed) - bar.n)
        if step % config.log_every == 0:
            row = {k: round(v / acc_n, 5) for k, v in acc.items()}
            ips = seen / max(elapsed - win_start, 1e-9)
            r = {"step": step, "elapsed_s": round(elapsed, 1), "lr": f"{lr:.2e}", "img_per_s": round(ips, 1)}
            log.writerow({**r, "split": "train", **row})
            log_fh.flush()
            bar.set_postfix(
                loss=f"{row['loss']:.3f}", aflw=f"{row['aflw_landmarks'] * 100:.2f}%", ips=f"{ips:.0f}"
            )
            acc, acc_n, seen, win_start = {}, 0, 0, elapsed
        if elapsed - last_ckpt >= config.checkpoint_minutes * 60:
            ev, ev_a = save()
            bar.write(
                f"step {step} ({elapsed / 60:.1f} min): synthetic val NME {ev['nme']:.2f}%, "
                f"AFLW train crops NME {ev_a['nme_balanced']:.2f}% balanced"
            )
            last_ckpt, t_last = elapsed, time.perf_counter()
    bar.close()
    ev, ev_a = save()
    net.save_pretrained(out_dir / "final")
    if ema is not None:
        ema.save_pretrained(out_dir / "final_ema")
    print(f"done: {step} steps; synthetic val NME {ev['nme']:.2f}%; AFLW train crops {ev_a}")
    log_fh.close()
    return net.eval()
