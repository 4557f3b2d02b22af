"""Face profiling of photos with ground-truth landmarks (the AFLW2000-3D train half).

:func:`face3d.train.data.generate` fits LFW photos from detected landmarks, which are
mostly frontal. Photos whose 68 landmarks are labelled can be fitted at any pose
(:func:`face3d.fit.landmark_fit.fit_landmarks` on the labels, in the labels' landmark convention),
so their textures include real half-profiles; their heads are re-rendered like LFW's, mostly at
large yaw (``DataConfig.profile_fraction``). The renders' landmarks are ICT's landmark vertices
(the synthetic convention, without the offset), so the shards are ordinary synthetic shards
(:func:`face3d.train.data.load_shards`) and mix with LFW's in
:func:`face3d.train.finetune.finetune`.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from face3d.fit.landmark_fit import FitConfig, fit_landmarks
from face3d.io import atomic_write_json, read_image
from face3d.train.data import DataConfig, FaceProfiler, write_shards

#: The labelled photos' defaults: no real crops (the fine-tune already sees the photos with their
#: labels), two thirds of the renders at |yaw| >= 45 degrees.
LABELLED_CONFIG = DataConfig(renders_per_photo=16, reals_per_photo=0, profile_fraction=0.65)


def fit_labelled(
    prof: FaceProfiler, image: np.ndarray, landmarks: np.ndarray, landmark_offset=None, max_error: float = 4.0
):
    """Fit ``prof``'s model to a photo's labelled (68, 2) landmarks (pixels) in their convention
    (``landmark_offset``: (68, 3) cm, model space, or None for ICT's vertices). Returns the
    ``FitResult`` or None when the mean landmark error exceeds ``max_error`` % of the face size."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks: expected (68, 2), got {lm.shape}")
    fit = fit_landmarks(
        prof.fit_model,
        torch.from_numpy(lm)[None],
        image.shape[:2],
        FitConfig(silhouette=False),
        landmark_offset=landmark_offset,
    )
    size = math.sqrt(float(np.prod(lm.max(0) - lm.min(0))))
    if float(fit.error_px[0]) / max(size, 1.0) * 100 > max_error:
        return None
    return fit


def profile_labelled(
    samples,
    out: str | Path,
    config: DataConfig = LABELLED_CONFIG,
    landmark_offset=None,
    seed: int = 0,
    progress: bool = True,
    model_dir=None,
) -> list[Path]:
    """Write shards ``out/shard_NNNNN.npz`` of renders of labelled photos (resumable).

    Args:
        samples: :class:`face3d.eval.aflw.AFLWSample` list (``image_path``, ``landmarks``).
        out: shard folder; shard ``i`` holds samples ``[i * P, (i + 1) * P)`` of a seeded random
            order (``P = config.photos_per_shard``) and is skipped when it exists.
        config: :class:`DataConfig` (renders per photo, pose ranges, ``profile_fraction`` ...).
        landmark_offset: (68, 3) cm, the labels' landmark convention (for AFLW2000-3D, the
            regressor's calibrated ``lm_offset``), or None.
        seed: order, pose and background draws.

    Returns:
        The shard paths written by this call.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    samples = list(samples)
    atomic_write_json(
        out / "config.json",
        {
            "data": asdict(config),
            "labelled_photos": len(samples),
            "seed": seed,
            "convention": landmark_offset is not None,
        },
    )
    order = np.random.default_rng(seed).permutation(len(samples))
    samples = [samples[i] for i in order]
    P = config.photos_per_shard
    todo = [i for i in range(math.ceil(len(samples) / P)) if not (out / f"shard_{i:05d}.npz").exists()]
    if not todo:
        return []

    def fit(prof, image, sample):
        return fit_labelled(prof, image, sample.landmarks, landmark_offset, config.max_fit_error)

    written, skipped = write_shards(
        samples,
        lambda s: read_image(s.image_path),
        fit,
        out,
        todo,
        config,
        seed,
        "shard",
        "labelled profiling",
        progress,
        model_dir,
    )
    print(f"labelled profiling: {len(written)} shards written, {skipped} photos skipped (fit error)")
    return written
