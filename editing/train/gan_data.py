"""The DefGAN training-data cache: aligned crops of real photos, their fitted expressions and
3D-edited renders, in shards (written by :func:`editing.train.gan_cache.build_cache`, read by
:func:`load_cache`).

Layout of ``cache_dir``::

    config.json          {"data": DataConfig, "expression_names": [...], "version": 1}
    index.jsonl          one line per processed file: {"name", "status": "ok", "shard"} or
                         {"name", "status": "failed", "reason"}
    shard_00000.npz      ``shard_size`` samples (keys: see :data:`SHARD_KEYS`)
    summary.json         the last build's :class:`editing.train.gan_cache.CacheSummary`

Per sample (S = ``DataConfig.size``, T = ``targets_per_image``, K = 53 ARKit weights)::

    photo       (S, S, 3) uint8    aligned crop of the photo
    y_src       (K,) float32       fitted ARKit weights (model.expression_names order)
    yaw         () float32         fitted yaw, degrees
    box         (4,) float32       crop box (x0, y0, x1, y1), image pixels
    landmarks   (68, 2) float32    fitted anatomical landmarks, crop pixels
    name        () str             path relative to its input folder
    y_tgt       (T, K) float32     target weights (FaceEdit.target)
    render_src  (S, S, 3) uint8    the photo edited to its own expression (``renders`` only)
    render_tgt  (T, S, S, 3) uint8 the photo edited to each target (``renders`` only)
    mask        (S, S) uint8       0..255, where the edits may change pixels (``renders`` only)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face3d.errors import Face3DError, InputError

CACHE_VERSION = 1
BASE_KEYS = ("photo", "y_src", "yaw", "box", "landmarks", "name", "y_tgt")
RENDER_KEYS = ("render_src", "render_tgt", "mask")
SHARD_KEYS = BASE_KEYS + RENDER_KEYS


@dataclass(frozen=True)
class DataConfig:
    """How the cache is built.

    Attributes:
        size: side of the square aligned crop, pixels.
        scale: crop side as a multiple of the larger side of the fitted landmarks' box.
        targets_per_image: target expressions edited per photo (T).
        max_images: use at most this many images, spread evenly over the sorted file list
            (None: all).
        seed: seed of the target draws (each image's draw also depends on its relative path).
        shard_size: samples per ``shard_*.npz``.
        renders: store the 3D edits (``render_src``, ``render_tgt``, ``mask``); False keeps only
            the photos and fitted weights (the 2D path) and skips all rendering.
        texture_size: (Ht, Wt) of the UV atlas of the 3D edits. A quarter of the edit's default
            (512, 1024): the atlas only fills surface the photo did not show (seen surface takes the
            photo's pixels directly), so at crop size 128 it changes 0.2 % of the mask's pixels by
            more than 10 grey levels, and saves ~0.7 s per LFW image (0.53 s instead of 1.27 s).
    """

    size: int = 128
    scale: float = 1.6
    targets_per_image: int = 2
    max_images: int | None = None
    seed: int = 0
    shard_size: int = 64
    renders: bool = True
    texture_size: tuple[int, int] = (128, 256)

    def __post_init__(self):
        object.__setattr__(self, "texture_size", tuple(int(v) for v in self.texture_size))
        if self.size < 8 or self.targets_per_image < 1 or self.shard_size < 1 or self.scale <= 0:
            raise InputError(f"invalid cache settings: {self}")
        if self.max_images is not None and self.max_images < 1:
            raise InputError(f"max_images must be at least 1, got {self.max_images}")


@dataclass(frozen=True)
class CacheSample:
    """One photo's cache entry (shapes in the module docstring; render fields None without renders)."""

    photo: np.ndarray
    y_src: np.ndarray
    yaw: float
    box: np.ndarray
    landmarks: np.ndarray
    name: str
    y_tgt: np.ndarray
    render_src: np.ndarray | None = None
    render_tgt: np.ndarray | None = None
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class GanCache:
    """A loaded cache: the shards concatenated, N samples (see the module docstring).

    Attributes:
        photo: (N, S, S, 3) uint8; y_src: (N, K) float32; yaw: (N,) float32 degrees;
        box: (N, 4) float32 image pixels; landmarks: (N, 68, 2) float32 crop pixels;
        names: N relative paths; y_tgt: (N, T, K) float32.
        render_src: (N, S, S, 3) uint8; render_tgt: (N, T, S, S, 3) uint8; mask: (N, S, S) uint8
            0..255 (all three None when the cache was built without renders).
        config: the :class:`DataConfig` of the last build; expression_names: the K names.
    """

    photo: np.ndarray
    y_src: np.ndarray
    yaw: np.ndarray
    box: np.ndarray
    landmarks: np.ndarray
    names: tuple[str, ...]
    y_tgt: np.ndarray
    render_src: np.ndarray | None
    render_tgt: np.ndarray | None
    mask: np.ndarray | None
    config: DataConfig
    expression_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)


# ------------------------------------------------------------------ load
def read_index(cache_dir: Path) -> list[dict]:
    """Records of ``index.jsonl`` (a torn last line from a killed run is ignored)."""
    path = cache_dir / "index.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_shards(cache_dir: Path, what: str, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Every shard listed as ``ok`` in ``index.jsonl`` of ``cache_dir``, concatenated per key
    (``keys``, default all); shared by the GAN, cycle and flow caches (``what`` names it in errors).

    Raises:
        InputError: no shard written yet.
        Face3DError: a listed shard is missing or holds another number of samples than listed.
    """
    counts: dict[int, int] = {}
    for r in read_index(cache_dir):
        if r.get("status") == "ok":
            counts[int(r["shard"])] = counts.get(int(r["shard"]), 0) + 1
    if not counts:
        raise InputError(f"{cache_dir}: the {what} has no shards yet")
    parts: dict[str, list[np.ndarray]] = {}
    for sid in sorted(counts):
        path = cache_dir / f"shard_{sid:05d}.npz"
        if not path.is_file():
            raise Face3DError(f"{path}: listed in index.jsonl but missing")
        with np.load(path, allow_pickle=False) as z:
            if len(z["name"]) != counts[sid]:
                raise Face3DError(f"{path}: {len(z['name'])} samples, index.jsonl lists {counts[sid]}")
            for k in keys or z.files:
                parts.setdefault(k, []).append(z[k])
    return {k: np.concatenate(v) for k, v in parts.items()}


def load_cache(cache_dir: str | os.PathLike) -> GanCache:
    """Read every shard listed in ``index.jsonl`` of ``cache_dir``.

    Raises:
        InputError: the folder has no cache config or no shards.
        Face3DError: a listed shard is missing or has the wrong number of samples.
    """
    cache_dir = Path(cache_dir)
    cfg_path = cache_dir / "config.json"
    if not cfg_path.is_file():
        raise InputError(
            f"{cache_dir}: not a GAN cache (no config.json); build one with "
            "scripts/rebuild/build_gan_cache.py or face3d train deform --data"
        )
    payload = json.loads(cfg_path.read_text())
    config = DataConfig(**payload["data"])
    arrays = read_shards(cache_dir, "GAN cache")
    return GanCache(
        photo=arrays["photo"],
        y_src=arrays["y_src"],
        yaw=arrays["yaw"],
        box=arrays["box"],
        landmarks=arrays["landmarks"],
        names=tuple(str(n) for n in arrays["name"]),
        y_tgt=arrays["y_tgt"],
        render_src=arrays.get("render_src"),
        render_tgt=arrays.get("render_tgt"),
        mask=arrays.get("mask"),
        config=config,
        expression_names=tuple(payload["expression_names"]),
    )
