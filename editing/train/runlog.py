"""Training-run records: the run folder's config and checkpoint, the loss log (CSV), loss curves
(PNG) and sample grids."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from pathlib import Path

import numpy as np
import torch

from face3d.errors import InputError
from face3d.io import atomic_write_bytes, atomic_write_json

CONFIG, CHECKPOINT = "config.json", "checkpoint.pt"


def open_run(
    run_dir: Path, config, from_dict, resume: bool, free: tuple[str, ...] = ("steps",), device="cpu"
):
    """Start or resume the training run in ``run_dir``, then write its ``config.json``.

    Args:
        config: the run's frozen settings dataclass; ``from_dict`` rebuilds one from its JSON.
        free: fields a resumed run may change (``steps``: train further).
    Returns:
        the contents of ``checkpoint.pt`` when resuming from one, else None.
    Raises:
        InputError: a checkpoint there without ``resume``, or a resume whose settings differ from the
            saved ones in more than ``free``.
    """
    cfg_path, ckpt = run_dir / CONFIG, run_dir / CHECKPOINT
    state = None
    if ckpt.is_file():
        if not resume:
            raise InputError(
                f"{run_dir} already holds a run; pass --resume to continue it or choose another --out"
            )
        saved = from_dict(json.loads(cfg_path.read_text()))
        if dataclasses.replace(saved, **{f: getattr(config, f) for f in free}) != config:
            raise InputError(f"--resume: {cfg_path} was written by a different configuration")
        state = torch.load(ckpt, map_location=device, weights_only=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cfg_path, dataclasses.asdict(config))
    return state


def save_checkpoint(run_dir: Path, state: dict) -> None:
    """Write ``checkpoint.pt`` (``state``: state dicts, the step, plain values) atomically."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(run_dir / CHECKPOINT, buf.getvalue())


def append_losses(path: str | os.PathLike, step: int, values: dict[str, float]) -> None:
    """Append one row ``step, <values...>`` to the CSV at ``path`` (header written on creation).

    Rows of steps at or after ``step`` (left by a run killed after its last checkpoint and then
    resumed) are dropped first, so the log has one row per step.
    """
    path = Path(path)
    names = sorted(values)
    rows: list[list[str]] = []
    if path.is_file():
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header == ["step", *names]:
                rows = [r for r in reader if r and int(r[0]) < step]
    rows.append([str(step), *(f"{values[k]:.6g}" for k in names)])
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["step", *names])
    writer.writerows(rows)
    atomic_write_bytes(path, text.getvalue().encode())


def read_losses(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(steps (N,), name -> (N,) values) from a loss CSV."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        data = np.array([[float(v) for v in r] for r in reader if r], dtype=np.float64).reshape(
            -1, len(header)
        )
    return data[:, 0], {k: data[:, i] for i, k in enumerate(header[1:], 1)}


def plot_losses(csv_path: str | os.PathLike, png_path: str | os.PathLike, smooth: int = 10) -> None:
    """One panel per loss term (moving average over ``smooth`` logged rows) -> PNG, atomically."""
    import matplotlib  # plotting only: matplotlib is slow to import, and needs its backend set first

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    steps, values = read_losses(csv_path)
    if len(steps) == 0:
        return
    names = sorted(values)
    cols = 4
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        v = values[name]
        k = max(1, min(smooth, len(v)))
        ax.plot(steps, v, alpha=0.3, lw=0.8)
        ax.plot(steps[k - 1 :], np.convolve(v, np.ones(k) / k, mode="valid"), lw=1.2)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(png_path, buf.getvalue())


def sample_grid(columns: list[torch.Tensor]) -> np.ndarray:
    """Tile (B, 3, H, W) images in [0, 1] as rows (one per sample) of columns -> (B*H, C*W, 3) uint8."""
    tiles = [c.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() for c in columns]
    rows = [np.concatenate([t[i] for t in tiles], 1) for i in range(len(tiles[0]))]
    return (np.concatenate(rows, 0) * 255 + 0.5).astype(np.uint8)
