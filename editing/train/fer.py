"""Train the FER2013 expression classifier of :mod:`editing.compare.fer` (CPU, resumable).

One-cycle AdamW (cosine warm-up then cosine decay) with label smoothing on ``x_train`` minus a
stratified held-out 5 % (validation, logged each epoch); augmentation: horizontal flips and a random
small affine (shift, scale, rotation) per image, on whole batches with ``grid_sample``. The schedule
runs over a number of epochs or, with ``minutes``, over a wall-clock budget (progress = elapsed /
budget: the run ends on time whatever the machine's load, at the cost of bit-exact reproducibility).
Every epoch writes ``checkpoint.pt`` (model, optimiser, step, elapsed time) and a row of ``log.csv``;
``resume=True`` continues from it with the same data order. The final model is the last step's (no
selection on the test set); the FER2013 test accuracy is measured once at the end (``metrics.json``).
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from tqdm import tqdm

from editing.compare.fer import FerClassifier, FerConfig, FerNet
from face3d.detect import DetectConfig, FaceDetector, predict_landmarks
from face3d.errors import Face3DError
from face3d.io import atomic_write_bytes, atomic_write_json

LOG_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s", "seconds")


def load_fer2013(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read ``fer2013_48.npz``: ``x_train`` (N, 48, 48) uint8, ``y_train`` (N,), ``x_test``, ``y_test``.

    Raises:
        Face3DError: the file is missing or lacks these arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise Face3DError(f"FER2013 data: {path} is missing")
    try:
        with np.load(path) as d:
            data = {k: d[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (KeyError, OSError, ValueError) as err:
        raise Face3DError(f"FER2013 data: {path} is unreadable ({err})") from err
    return data


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (saved in the checkpoint and ``metrics.json``).

    Attributes:
        epochs: passes over the training split (the one-cycle schedule spans them all), or the
            most passes when ``minutes`` is given.
        minutes: wall-clock budget (training + validation); the schedule follows the elapsed
            fraction of it and training stops when it is spent. None: schedule by epochs.
        batch_size: images per step.
        lr: peak learning rate of the one-cycle schedule; ``weight_decay``: AdamW's.
        label_smoothing: of the cross-entropy.
        val_fraction: stratified share of ``x_train`` held out for validation.
        shift: max random shift, as a fraction of the side; ``scale``: max relative zoom;
            ``rotate``: max rotation in degrees.
        threads: torch CPU threads.
        seed: seeds the split, the initialisation, the data order and the augmentation.
    """

    epochs: int = 8
    minutes: float | None = None
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    val_fraction: float = 0.05
    shift: float = 0.1
    scale: float = 0.1
    rotate: float = 10.0
    threads: int = 1
    seed: int = 0


def one_cycle_lr(frac: float, peak: float, pct_start: float = 0.25, div: float = 25.0) -> float:
    """Learning rate at ``frac`` in [0, 1] of training: cosine from ``peak / div`` up to ``peak`` over
    ``pct_start``, then cosine down to ``peak / (div * 1e4)`` (torch's ``OneCycleLR`` shape)."""
    frac = min(max(frac, 0.0), 1.0)
    lo, end = peak / div, peak / (div * 1e4)
    if frac < pct_start:
        return lo + (peak - lo) * (1 - math.cos(math.pi * frac / pct_start)) / 2
    t = (frac - pct_start) / (1 - pct_start)
    return end + (peak - end) * (1 + math.cos(math.pi * t)) / 2


def split_train_val(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of indices ``range(len(y))`` -> (train (N-M,), val (M,)), both sorted."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        val.extend(rng.choice(idx, size=max(1, round(len(idx) * fraction)), replace=False).tolist())
    val = np.sort(np.array(val, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(y)), val)
    return train, val


def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random flip + small affine of each image. (N, 1, S, S) float -> same shape (border padding)."""
    n = x.shape[0]
    u = torch.rand(n, 5, generator=gen) * 2 - 1  # uniform in [-1, 1]
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    zoom = 1.0 + cfg.scale * u[:, 0]
    ang = torch.deg2rad(cfg.rotate * u[:, 1])
    cos, sin = torch.cos(ang) / zoom, torch.sin(ang) / zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    theta[:, 0, 2], theta[:, 1, 2] = 2 * cfg.shift * u[:, 2], 2 * cfg.shift * u[:, 3]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) / 255.0)[:, None]


@torch.inference_mode()
def evaluate(net: FerNet, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> tuple[float, float]:
    """(loss, accuracy) of ``net`` on (N, 48, 48) uint8 images and (N,) labels, no augmentation."""
    net.eval()
    loss = correct = 0.0
    for i in range(0, len(x), batch_size):
        logits = net(_to_tensor(x[i : i + batch_size]))
        yb = torch.from_numpy(y[i : i + batch_size])
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += float((logits.argmax(1) == yb).sum())
    return loss / max(len(x), 1), correct / max(len(x), 1)


def _schedule(train_config: dict) -> dict:
    """The settings a resumed run must share with the checkpoint (all but threads)."""
    return {k: v for k, v in train_config.items() if k != "threads"}


def _save_checkpoint(path: Path, **state) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


@dataclass
class _Progress:
    """Where a run stands (saved in ``checkpoint.pt`` every epoch)."""

    epoch: int = 0
    steps: int = 0
    train_seconds: float = 0.0
    done: bool = False
    val_acc: float = float("nan")

    def fraction(self, elapsed: float, cfg: TrainConfig, total_steps: int) -> float:
        """Progress through the schedule: of the time budget (``cfg.minutes``) or of the steps."""
        if cfg.minutes is not None:
            return elapsed / (cfg.minutes * 60.0)
        return self.steps / total_steps


def _resume_or_start(
    net: FerNet, opt, out_dir: Path, net_config: FerConfig, cfg: TrainConfig, resume: bool
) -> _Progress:
    """Load ``checkpoint.pt`` into ``net`` and ``opt`` (``resume``), or start ``log.csv`` afresh."""
    ckpt_path = out_dir / "checkpoint.pt"
    if resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        same = state["net_config"] == net_config.to_json()
        if not same or _schedule(state["train_config"]) != _schedule(asdict(cfg)):
            raise ValueError(f"{ckpt_path} was written with other settings; use another --out")
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        keys = ("epoch", "steps", "train_seconds", "done", "val_acc")
        return _Progress(*(state[k] for k in keys))
    with open(out_dir / "log.csv", "w", newline="") as f:
        csv.writer(f).writerow(LOG_FIELDS)
    return _Progress()


def _train_epoch(
    net: FerNet,
    opt,
    x: np.ndarray,
    y: np.ndarray,
    cfg: TrainConfig,
    epoch: int,
    run: _Progress,
    total_steps: int,
    progress: bool,
) -> tuple[float, float, float, float]:
    """One pass over ``x``, ``y`` (stops early when the schedule is spent: ``run.done``).

    Returns:
        (summed loss, correct predictions, images seen, the ``time.perf_counter()`` it started at).
    """
    t0 = time.perf_counter()
    net.train()
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
    order = torch.randperm(len(x), generator=gen).numpy()
    tot_loss = tot_correct = seen = 0.0
    bar = tqdm(range(math.ceil(len(x) / cfg.batch_size)), desc=f"epoch {epoch + 1}", disable=not progress)
    for step in bar:
        frac = run.fraction(run.train_seconds + time.perf_counter() - t0, cfg, total_steps)
        if frac >= 1.0:
            run.done = True
            break
        lr = one_cycle_lr(frac, cfg.lr)
        for group in opt.param_groups:
            group["lr"] = lr
        b = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        xb = augment(_to_tensor(x[b]), cfg, gen).contiguous(memory_format=torch.channels_last)
        yb = torch.from_numpy(y[b])
        logits = net(xb)
        loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run.steps += 1
        tot_loss += float(loss.detach()) * len(b)
        tot_correct += float((logits.argmax(1) == yb).sum())
        seen += len(b)
        bar.set_postfix(loss=f"{tot_loss / max(seen, 1):.3f}", acc=f"{tot_correct / max(seen, 1):.3f}")
    bar.close()
    run.done = run.done or run.steps >= total_steps
    return tot_loss, tot_correct, seen, t0


def _end_epoch(
    out_dir: Path, net: FerNet, opt, run: _Progress, stats: tuple, cfg: TrainConfig, progress: bool
) -> None:
    """Append the epoch's row to ``log.csv`` and write ``checkpoint.pt``. ``stats``: (summed loss,
    correct predictions, images seen, seconds of training, validation loss)."""
    tot_loss, tot_correct, seen, epoch_s, val_loss = stats
    row = [run.epoch, tot_loss / max(seen, 1), tot_correct / max(seen, 1), val_loss, run.val_acc]
    row += [opt.param_groups[0]["lr"], seen / epoch_s, run.train_seconds]
    with open(out_dir / "log.csv", "a", newline="") as f:
        csv.writer(f).writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
    _save_checkpoint(
        out_dir / "checkpoint.pt",
        model=net.state_dict(),
        optimizer=opt.state_dict(),
        epoch=run.epoch,
        steps=run.steps,
        train_seconds=run.train_seconds,
        done=run.done,
        val_acc=run.val_acc,
        net_config=net.config.to_json(),
        train_config=asdict(cfg),
    )
    if progress:
        print(
            f"epoch {run.epoch}: val acc {run.val_acc:.4f} loss {val_loss:.4f} ({seen / epoch_s:.0f} img/s)"
        )


def _test_metrics(
    net: FerNet, net_config: FerConfig, cfg: TrainConfig, data: dict, run: _Progress, sizes: tuple[int, int]
) -> tuple[FerClassifier, dict]:
    """The trained classifier and its ``metrics.json``: FER2013 test accuracy (with and without
    the flip average), per-class recall, confusion matrix, training settings and time.
    ``sizes``: (training, validation) images."""
    net = net.to(memory_format=torch.contiguous_format)
    test_loss, test_acc = evaluate(net, data["x_test"], data["y_test"])
    clf = FerClassifier(net_config, net)
    probs = clf.predict_batch(data["x_test"])
    pred = probs.argmax(1)
    conf = np.zeros((len(net_config.classes),) * 2, dtype=np.int64)
    np.add.at(conf, (data["y_test"], pred), 1)
    recall = conf.diagonal() / np.maximum(conf.sum(1), 1)
    steps_per_epoch = math.ceil(sizes[0] / cfg.batch_size)
    return clf, {
        "test_accuracy": round(float((pred == data["y_test"]).mean()), 4),
        "test_accuracy_no_flip_average": round(test_acc, 4),
        "test_loss": round(test_loss, 4),
        "test_images": int(len(pred)),
        "per_class_recall": {c: round(float(r), 4) for c, r in zip(net_config.classes, recall, strict=True)},
        "confusion_matrix_rows_true": conf.tolist(),
        "val_accuracy": round(run.val_acc, 4),
        "train_images": int(sizes[0]),
        "val_images": int(sizes[1]),
        "train_seconds": round(run.train_seconds, 1),
        "epochs": round(run.steps / steps_per_epoch, 2),
        "steps": run.steps,
        "params": int(sum(p.numel() for p in net.parameters())),
        "train_config": asdict(cfg),
    }


def train(
    data_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    net_config: FerConfig = FerConfig(),
    cfg: TrainConfig = TrainConfig(),
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Train on ``data_path`` (``fer2013_48.npz``) into ``out_dir``.

    Writes ``checkpoint.pt`` and ``log.csv`` every epoch; when all epochs are done, the model
    (``config.json`` + ``weights.pt``) and ``metrics.json`` (test accuracy, per-class recall,
    confusion matrix, training settings and time) into ``out_dir/final``.

    Returns:
        The metrics dict.
    """
    torch.set_num_threads(cfg.threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_fer2013(data_path)
    tr_idx, va_idx = split_train_val(data["y_train"], cfg.val_fraction, cfg.seed)
    x_tr, y_tr = data["x_train"][tr_idx], data["y_train"][tr_idx]
    x_va, y_va = data["x_train"][va_idx], data["y_train"][va_idx]

    torch.manual_seed(cfg.seed)
    net = FerNet(net_config).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = cfg.epochs * math.ceil(len(x_tr) / cfg.batch_size)
    run = _resume_or_start(net, opt, out_dir, net_config, cfg, resume)
    for epoch in range(run.epoch, cfg.epochs):
        if run.done or run.fraction(run.train_seconds, cfg, total_steps) >= 1.0:
            break
        tot_loss, tot_correct, seen, t0 = _train_epoch(
            net, opt, x_tr, y_tr, cfg, epoch, run, total_steps, progress
        )
        epoch_s = time.perf_counter() - t0
        val_loss, run.val_acc = evaluate(net, x_va, y_va)
        run.train_seconds += time.perf_counter() - t0
        run.epoch = epoch + 1
        _end_epoch(out_dir, net, opt, run, (tot_loss, tot_correct, seen, epoch_s, val_loss), cfg, progress)

    clf, metrics = _test_metrics(net, net_config, cfg, data, run, (len(x_tr), len(x_va)))
    clf.save_pretrained(out_dir / "final")
    atomic_write_json(out_dir / "final" / "metrics.json", metrics)
    return metrics


def calibrate_crop(faces: np.ndarray, n: int = 400, seed: int = 0, upscale: int = 4) -> dict:
    """Measure how FER2013 frames a face relative to dlib's 68 landmarks (for :func:`fer_crop`).

    Runs dlib's HOG detector and shape predictor on ``n`` random faces ((N, 48, 48) uint8), upscaled
    ``upscale`` times (HOG needs ~65 px faces), and returns the medians and quartiles of
    ``crop_scale`` = 48 / the landmark box's larger side and ``crop_shift`` = how far the frame centre
    lies above the landmark box centre, in units of that side (``dx``: how far the landmark box
    centre lies right of the frame centre).
    """
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(faces), size=min(n, len(faces)), replace=False)
    detector = FaceDetector(DetectConfig(use_cnn=False, hog_upsample=0))
    size = faces.shape[1]
    centre = (size - 1) / 2
    rows = []
    for i in idx:
        big = cv2.resize(faces[i], (size * upscale,) * 2, interpolation=cv2.INTER_CUBIC)
        rgb = np.ascontiguousarray(np.repeat(big[..., None], 3, axis=2))
        found = detector.detect(rgb, max_faces=1)
        if not found:
            continue
        lm = (predict_landmarks(rgb, found[0].box) + 0.5) / upscale - 0.5
        lo, hi = lm.min(0), lm.max(0)
        side = float(max(hi - lo))
        cx, cy = (lo + hi) / 2
        rows.append((size / side, (cy - centre) / side, (cx - centre) / side))
    r = np.array(rows).reshape(-1, 3)
    stats = {}
    for k, name in enumerate(("crop_scale", "crop_shift", "dx")):
        q = np.percentile(r[:, k], [25, 50, 75]) if len(r) else [math.nan] * 3
        stats[name] = {
            "median": round(float(q[1]), 4),
            "q25": round(float(q[0]), 4),
            "q75": round(float(q[2]), 4),
        }
    return {"faces_tried": int(len(idx)), "faces_found": int(len(r)), "upscale": upscale, **stats}
