"""The texture generator's training data: edit-and-back cycles of real photos (:mod:`editing.cycle`).

Each photo whose fitted mouth is open (or whose lips are apart) is edited to ``neutral`` with the
3D warp path and back to its own fitted expression. The result's mouth interior is drawn by the
hand-made fill; the photo is the pixel-aligned truth. Photos whose cycle draws fewer than
``CycleDataConfig.min_synth_px`` crop pixels are skipped (recorded in the index as ``skipped``).

Layout of ``cache_dir`` (the shards and resumable index of :class:`editing.train.gan_cache.ShardWriter`)::

    config.json      {"data": CycleDataConfig, "expression_names": [...], "version": 1}
    index.jsonl      one line per processed file (ok / skipped / failed, with the reason)
    shard_00000.npz  samples (S = size, K = 53 ARKit weights):
        photo   (S, S, 3) uint8   aligned crop of the photo: the truth
        cycle   (S, S, 3) uint8   the same crop of the edit-and-back result: the generator's input
        synth   (S, S) uint8      0..255, the pixels the cycle drew (the mask the generator gets)
        mouth   (S, S) uint8      0..255, the mouth region (:func:`editing.cycle.mouth_region`)
        y       (K,) float32      fitted ARKit weights (the cycle's target)
        yaw     () float32        fitted yaw, degrees
        box     (4,) float32      crop box in the image, pixels
        name    () str            path relative to its input folder
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from editing.api import EditContext
from editing.cycle import edit_and_back, mouth_open, mouth_region
from editing.expressions import parse_expressions
from editing.gan.crop import aligned_box, crop_mask_uint8, crop_square
from editing.train.gan_cache import check_or_write_config, fill_shards
from editing.train.gan_data import read_shards
from face3d.batch import collect_items
from face3d.errors import InputError
from face3d.fit import fit_image

CYCLE_VERSION = 1
KEYS = ("photo", "cycle", "synth", "mouth", "y", "yaw", "box", "name")


@dataclass(frozen=True)
class CycleDataConfig:
    """How the cycle cache is built.

    Attributes:
        size: side of the square aligned crop, pixels (the generator's input).
        scale: crop side as a multiple of the larger side of the fitted landmarks' box.
        via: the expression the cycle passes through (any ``--expr`` string).
        min_gap: skip the cycle when the fitted inner lips are closer than this (inter-ocular units)
            and jawOpen is under ``min_jaw_open``: a closed mouth has nothing to synthesise.
        min_jaw_open: see ``min_gap``.
        min_synth_px: keep a sample only if its cycle drew at least this many crop pixels.
        shard_size: samples per shard.
    """

    size: int = 128
    scale: float = 1.6
    via: str = "neutral"
    min_gap: float = 0.05
    min_jaw_open: float = 0.1
    min_synth_px: int = 15
    shard_size: int = 64

    def __post_init__(self):
        if self.size < 8 or self.scale <= 0 or self.shard_size < 1 or self.min_synth_px < 0:
            raise InputError(f"invalid cycle cache settings: {self}")


@dataclass(frozen=True)
class CycleSample:
    """One cached cycle (shapes in the module docstring)."""

    photo: np.ndarray
    cycle: np.ndarray
    synth: np.ndarray
    mouth: np.ndarray
    y: np.ndarray
    yaw: float
    box: np.ndarray
    name: str


@dataclass(frozen=True)
class CycleCache:
    """A loaded cycle cache: every key of the module docstring stacked over N samples, ``name``
    as a tuple; ``config`` and the K ``expression_names``."""

    arrays: dict[str, np.ndarray]
    names: tuple[str, ...]
    config: CycleDataConfig
    expression_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def __getattr__(self, key: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if key in arrays:
            return arrays[key]
        raise AttributeError(key)


def make_cycle_sample(image: np.ndarray, face, editor, via, name: str, config: CycleDataConfig):
    """The :class:`CycleSample` of one fitted face, or None when its cycle draws too little."""
    cyc = edit_and_back(editor, image, face, via)
    lm = face.fit.landmarks_fitted[0].detach().cpu().double().numpy()
    box = aligned_box(lm, config.scale)
    S = config.size
    synth = crop_mask_uint8(cyc.back.synthesized, box, S)
    if int((synth >= 128).sum()) < config.min_synth_px:
        return None
    return CycleSample(
        photo=crop_square(image, box, S),
        cycle=crop_square(cyc.back.image, box, S),
        synth=synth,
        mouth=crop_mask_uint8(mouth_region(lm, image.shape[:2]), box, S),
        y=cyc.back.target.astype(np.float32),
        yaw=float(face.fit.yaw_pitch_roll[0, 0]),
        box=np.asarray(box, np.float32),
        name=name,
    )


def _stack(samples: list[CycleSample]) -> dict[str, np.ndarray]:
    out = {k: np.stack([getattr(s, k) for s in samples]) for k in KEYS if k != "name"}
    out["name"] = np.array([s.name for s in samples], dtype=np.str_)
    out["yaw"] = out["yaw"].astype(np.float32)
    return out


def build_cycle_cache(
    inputs: list[str],
    cache_dir: str | os.PathLike,
    config: CycleDataConfig = CycleDataConfig(),
    ctx: EditContext | None = None,
    progress: bool = True,
):
    """Fit the largest face of every image of ``inputs`` (files or folders), run its cycle and
    append the kept samples to ``cache_dir``. Resumes: files listed in ``index.jsonl`` are skipped.

    Returns:
        the :class:`face3d.batch.BatchSummary` of the run (a skipped photo counts as processed).
    Raises:
        InputError: no images, or ``cache_dir`` holds a cache built with other settings.
    """
    cache_dir = Path(cache_dir)
    items, problems = collect_items(inputs)
    ctx = ctx or EditContext.from_dir(refine="none")
    names = tuple(ctx.fit_model.expression_names)
    via = parse_expressions(config.via, names)[0]
    cache_dir.mkdir(parents=True, exist_ok=True)
    payload = {"version": CYCLE_VERSION, "data": dataclasses.asdict(config), "expression_names": list(names)}
    check_or_write_config(cache_dir, payload, free=("shard_size",))

    def make(image: np.ndarray, name: str) -> CycleSample | None:
        faces = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector, 1, regressor=ctx.regressor)
        if not faces:
            raise InputError("no face found")
        if not mouth_open(faces[0], names, config.min_gap, config.min_jaw_open):
            return None
        return make_cycle_sample(image, faces[0], ctx.editor, via, name, config)

    args = (cache_dir, inputs, items, problems, config.shard_size, _stack, make, "cycle cache", progress)
    return fill_shards(*args, skip_reason="mouth closed or nothing drawn")[0]


def load_cycle_cache(cache_dir: str | os.PathLike) -> CycleCache:
    """Every shard listed in ``index.jsonl`` of ``cache_dir``, concatenated.

    Raises:
        InputError: no cycle cache there, or no shard written yet.
        Face3DError: a listed shard is missing or does not match the index.
    """
    cache_dir = Path(cache_dir)
    cfg = cache_dir / "config.json"
    if not cfg.is_file():
        raise InputError(f"{cache_dir}: not a cycle cache (no config.json); build one with build_cycle_cache")
    payload = json.loads(cfg.read_text())
    arrays = read_shards(cache_dir, "cycle cache", KEYS)
    names = tuple(str(n) for n in arrays.pop("name"))
    return CycleCache(arrays, names, CycleDataConfig(**payload["data"]), tuple(payload["expression_names"]))
