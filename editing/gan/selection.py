"""Which photos a GAN training cache draws from: an even spread over the sorted files.

Used by the cache builder (:mod:`editing.train.gan_data`) and by benchmarks that must hold the
training photos out without the cache at hand (``scripts/bench/compare_sets.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from face3d.batch import make_items


def select_evenly(n: int, max_images: int | None) -> np.ndarray:
    """Indices of at most ``max_images`` of ``n`` sorted items, spread evenly over the list."""
    if max_images is None or max_images >= n:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_images)).astype(int))


def selected_images(inputs: list[str], max_images: int | None) -> list[Path]:
    """The image files a cache built from ``inputs`` with ``DataConfig(max_images=...)`` draws
    from (:func:`editing.train.gan_data.build_cache`'s selection, whether or not each one was then
    fitted): what a benchmark holds out without the cache at hand."""
    items, _ = make_items(inputs)
    return [items[i].path for i in select_evenly(len(items), max_images)]


def training_people(folder, cache_images: int) -> set[str]:
    """The LFW people (sub-folder names of ``folder``) a cache of ``cache_images`` photos selected:
    every photo of theirs may be trained on; every other person is held out."""
    return {p.parent.name for p in selected_images([str(folder)], cache_images)}


def lfw_training_photos(folder, cache_images: int) -> list[Path]:
    """Every photo (sorted) of the :func:`training_people` of ``folder``."""
    people = training_people(folder, cache_images)
    return sorted(p for name in people for p in (Path(folder) / name).glob("*.jpg"))


def lfw_heldout_photos(folder, cache_images: int) -> list[Path]:
    """The first photo (sorted) of each person of ``folder`` not among its :func:`training_people`."""
    banned = training_people(folder, cache_images)
    people = sorted(p for p in Path(folder).iterdir() if p.is_dir() and p.name not in banned)
    return [imgs[0] for p in people if (imgs := sorted(p.glob("*.jpg")))]
