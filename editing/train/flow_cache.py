"""The 2D baseline's distillation data: the 3D warp's dense motion on training photos.

Each photo's largest face is fitted and edited (in motion only: :meth:`Editor3D.motion_field`) to
drawn targets (:func:`editing.train.gan_cache.sample_targets`); the motion is cropped to the aligned
crop the deformation generator sees and stored in its normalised units, the teacher of
``G_def(I, y_src, y_tgt)`` (:mod:`editing.train.flow_distill`).

Layout of ``cache_dir`` (the shards and resumable index of :class:`editing.train.gan_cache.ShardWriter`)::

    config.json      {"data": FlowDataConfig, "expression_names": [...], "version": 1}
    index.jsonl      one line per processed file (ok / failed, with the reason)
    shard_00000.npz  samples (S = size, F = flow_size, T = targets_per_image, K = 53 ARKit weights):
        photo   (S, S, 3) uint8       aligned crop of the photo
        y_src   (K,) float32          fitted ARKit weights
        y_tgt   (T, K) float32        target weights
        flow    (T, F, F, 2) float16  backward motion (x, y) of the aligned crop in
                                      :func:`editing.gan.networks.warp`'s normalised units
                                      (d image pixels in a box of side s: 2 d / s)
        mask    (S, S) uint8          0..255, the union of the targets' paste-back alphas
        yaw     () float32            fitted yaw, degrees
        box     (4,) float32          crop box in the image, pixels
        name    () str                path relative to its input folder
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from editing.api import EditContext
from editing.expressions import load_presets
from editing.gan.crop import aligned_box, crop_mask_uint8, crop_matrix, crop_square
from editing.train.gan_cache import check_or_write_config, fill_shards, sample_targets
from editing.train.gan_data import DataConfig, read_shards
from face3d.batch import collect_items
from face3d.errors import InputError
from face3d.fit import fit_image

FLOW_VERSION = 1
KEYS = ("photo", "y_src", "y_tgt", "flow", "mask", "yaw", "box", "name")


@dataclass(frozen=True)
class FlowDataConfig:
    """How the flow cache is built.

    Attributes:
        size: side of the aligned crop, pixels (the generator's input).
        scale: crop side as a multiple of the larger side of the fitted landmarks' box.
        flow_size: side of the stored flow (the generator predicts at ``size / flow_stride``).
        targets_per_image: targets drawn per photo (:func:`sample_targets`).
        seed: seed of the target draws (each photo's also depends on its name).
        shard_size: samples per shard.
    """

    size: int = 128
    scale: float = 1.6
    flow_size: int = 64
    targets_per_image: int = 4
    seed: int = 0
    shard_size: int = 64

    def __post_init__(self):
        if min(self.size, self.flow_size) < 4 or self.targets_per_image < 1 or self.shard_size < 1:
            raise InputError(f"invalid flow cache settings: {self}")


@dataclass(frozen=True)
class FlowSample:
    """One photo's entry (shapes in the module docstring)."""

    photo: np.ndarray
    y_src: np.ndarray
    y_tgt: np.ndarray
    flow: np.ndarray
    mask: np.ndarray
    yaw: float
    box: np.ndarray
    name: str


@dataclass(frozen=True)
class FlowCache:
    """A loaded flow cache, N samples (arrays as in the module docstring with a leading N)."""

    photo: np.ndarray
    y_src: np.ndarray
    y_tgt: np.ndarray
    flow: np.ndarray
    mask: np.ndarray
    yaw: np.ndarray
    box: np.ndarray
    names: tuple[str, ...]
    config: FlowDataConfig

    def __len__(self) -> int:
        return len(self.names)


def crop_motion(motion: np.ndarray, crop, image_shape, box, flow_size: int) -> np.ndarray:
    """A work-crop motion ((h, w, 2) pixels, the crop ``crop`` of an image of ``image_shape``) ->
    (flow_size, flow_size, 2) float32 in the aligned crop ``box``, normalised units (zero outside
    the work crop)."""
    H, W = image_shape[:2]
    x0, y0, x1, y1 = crop
    full = np.zeros((H, W, 2), np.float32)
    full[y0:y1, x0:x1] = motion
    out = cv2.warpAffine(
        full,
        crop_matrix(box, flow_size),
        (flow_size, flow_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    return out * np.float32(2.0 / (box[2] - box[0]))


def make_flow_sample(image, face, specs, editor, name: str, config: FlowDataConfig) -> FlowSample:
    """The :class:`FlowSample` of one fitted face of ``image`` ((H, W, 3) uint8) for ``specs``."""
    fit = face.fit
    lm = fit.landmarks_fitted[0].detach().cpu().double().numpy()
    box = aligned_box(lm, config.scale)
    fields = editor.motion_field(image, face, specs)
    alpha = np.max([f.alpha for f in fields], 0)
    flows = [crop_motion(f.motion, f.crop, image.shape, box, config.flow_size) for f in fields]
    return FlowSample(
        photo=crop_square(image, box, config.size),
        y_src=fit.expression[0].detach().cpu().numpy().astype(np.float32),
        y_tgt=np.stack([f.target for f in fields]).astype(np.float32),
        flow=np.stack(flows).astype(np.float16),
        mask=crop_mask_uint8(alpha, box, config.size),
        yaw=float(fit.yaw_pitch_roll[0, 0]),
        box=np.asarray(box, np.float32),
        name=name,
    )


def _stack(samples: list[FlowSample]) -> dict[str, np.ndarray]:
    out = {k: np.stack([getattr(s, k) for s in samples]) for k in KEYS if k != "name"}
    out["yaw"] = out["yaw"].astype(np.float32)
    out["name"] = np.array([s.name for s in samples], dtype=np.str_)
    return out


def build_flow_cache(
    inputs: list[str],
    cache_dir: str | os.PathLike,
    config: FlowDataConfig = FlowDataConfig(),
    ctx: EditContext | None = None,
    progress: bool = True,
):
    """Fit the largest face of every image of ``inputs`` (files or folders), compute the 3D warp's
    motion to its drawn targets and append the samples to ``cache_dir``. Resumes: files listed in
    ``index.jsonl`` are skipped.

    Returns:
        the :class:`face3d.batch.BatchSummary` of the run.
    Raises:
        InputError: no images, or ``cache_dir`` holds a cache built with other settings.
    """
    cache_dir = Path(cache_dir)
    items, problems = collect_items(inputs)
    ctx = ctx or EditContext.from_dir(refine="none")
    names = tuple(ctx.fit_model.expression_names)
    cache_dir.mkdir(parents=True, exist_ok=True)
    payload = {"version": FLOW_VERSION, "data": dataclasses.asdict(config), "expression_names": list(names)}
    check_or_write_config(cache_dir, payload)
    presets = load_presets()
    draw = DataConfig(size=config.size, targets_per_image=config.targets_per_image, seed=config.seed)

    def make(image: np.ndarray, name: str) -> FlowSample:
        faces = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector, 1, regressor=ctx.regressor)
        if not faces:
            raise InputError("no face found")
        specs = sample_targets(name, draw, names, presets)
        return make_flow_sample(image, faces[0], specs, ctx.editor, name, config)

    args = (cache_dir, inputs, items, problems, config.shard_size, _stack, make, "flow cache", progress)
    return fill_shards(*args)[0]


def load_flow_cache(cache_dir: str | os.PathLike) -> FlowCache:
    """Read every shard listed in ``index.jsonl`` of ``cache_dir``.

    Raises:
        InputError: no flow cache there, or no shards yet.
        Face3DError: a listed shard is missing or has the wrong number of samples.
    """
    cache_dir = Path(cache_dir)
    cfg_path = cache_dir / "config.json"
    if not cfg_path.is_file():
        raise InputError(f"{cache_dir}: not a flow cache (no config.json)")
    config = FlowDataConfig(**json.loads(cfg_path.read_text())["data"])
    a = read_shards(cache_dir, "flow cache", KEYS)
    names = tuple(str(n) for n in a.pop("name"))
    return FlowCache(**a, names=names, config=config)
