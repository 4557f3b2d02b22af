"""Face-free pictures for the face confidence and the detection fallback.

* :func:`no_face_images`: skimage.data's sample images without a human face, and two random
  half-size crops of each (57 images in all), for measuring false detections.
* :func:`negative_batch`: windows of labelled photos whose crop misses the face, cut as the
  network's crops are, sampled like the fallback's sliding windows (:class:`NegativeConfig`), and
  :func:`clutter` (text, discs, lines, stripes) drawn over them; :func:`confidence_report` scores
  how well face logits separate faces from them.

Used by the benchmarks and by the fine-tune's hard negatives (:mod:`face3d.train.negatives`);
nothing on the inference path imports it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from face3d.crop import crop_box
from face3d.detect.boxes import box_area, intersection_area, landmark_box
from face3d.eval.aflw_crops import colour_jitter

NO_FACE: tuple[str, ...] = tuple(
    (
        "coffee chelsea rocket hubble_deep_field coins page text horse moon gravel logo "
        "immunohistochemistry retina brick grass stereo_motorcycle clock cell colorwheel"
    ).split()
)
"""skimage.data images without a human face (chelsea is a cat)."""


def _as_rgb_uint8(im) -> np.ndarray:
    """An skimage sample image as contiguous (H, W, 3) uint8 (stereo pairs: the left view)."""
    im = np.asarray(im[0] if isinstance(im, tuple) else im)
    if im.dtype == bool:
        im = im.astype(np.uint8) * 255
    if im.dtype != np.uint8:
        im = (255 * (im - im.min()) / max(float(np.ptp(im)), 1e-9)).astype(np.uint8)
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, 2)
    return np.ascontiguousarray(im[..., :3])


def no_face_images(seed: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """(name, (H, W, 3) uint8) pairs: each :data:`NO_FACE` image and two random half-size crops of
    it (``<name>_crop0``, ``<name>_crop1``; the crops are drawn with ``numpy.random.default_rng(seed)``)."""
    import skimage.data as sd

    rng = np.random.default_rng(seed)
    for name in NO_FACE:
        im = _as_rgb_uint8(getattr(sd, name)())
        yield name, im
        H, W = im.shape[:2]
        for k in range(2):
            h, w = H // 2, W // 2
            y, x = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
            yield f"{name}_crop{k}", np.ascontiguousarray(im[y : y + h, x : x + w])


@dataclass(frozen=True)
class NegativeConfig:
    """How face-free windows are drawn (defaults: the fallback's window range).

    Attributes:
        min_face / max_face: window (68-landmark-style box) side, log-uniform between these
            fractions of the photo's shorter side (:class:`face3d.regress.proposals.ProposalConfig`).
        max_overlap: the crop (``crop_scale`` x the window) may cover at most this fraction of
            the face's landmark box area.
        flip: probability of a horizontal mirror.
        colour: colour jitter as the face crops (:func:`face3d.eval.aflw_crops.colour_jitter`).
        max_padding: windows whose crop is more than this fraction black (AFLW2000-3D photos
            are padded with black where the original photo ended) are drawn again.
        clutter: fraction of the negatives drawn by :func:`clutter` (on a photo window or not).
        tries: windows drawn per photo before giving up on it (a face filling the photo).
    """

    min_face: float = 0.2
    max_face: float = 0.8
    max_overlap: float = 0.25
    flip: float = 0.5
    colour: bool = True
    max_padding: float = 0.2
    clutter: float = 0.0
    tries: int = 50

    def __post_init__(self):
        if not 0 < self.min_face <= self.max_face:
            raise ValueError(f"need 0 < min_face <= max_face, got {self.min_face}, {self.max_face}")
        if not 0 <= self.max_overlap < 1:
            raise ValueError(f"max_overlap must be in [0, 1), got {self.max_overlap}")
        if not 0 <= self.clutter <= 1:
            raise ValueError(f"clutter must be in [0, 1], got {self.clutter}")


def covered_fraction(region, box) -> float:
    """Fraction of ``box``'s area (x0, y0, x1, y1) inside ``region`` (x0, y0, x1, y1)."""
    return intersection_area(region, box) / max(box_area(box), 1e-9)


def face_free_window(
    rng: np.random.Generator,
    width: int,
    height: int,
    face_box,
    crop_scale: float,
    config: NegativeConfig = NegativeConfig(),
) -> tuple[float, float, float] | None:
    """A random crop ``(cx, cy, side)`` in pixels whose window lies inside the photo and whose crop
    covers at most ``config.max_overlap`` of ``face_box`` (x0, y0, x1, y1); None after
    ``config.tries`` misses."""
    short = min(width, height)
    lo, hi = math.log(config.min_face * short), math.log(config.max_face * short)
    for _ in range(config.tries):
        L = math.exp(rng.uniform(lo, hi))
        x0, y0 = rng.uniform(0, max(width - L, 0)), rng.uniform(0, max(height - L, 0))
        cx, cy, side = crop_box((x0, y0, x0 + L, y0 + L), crop_scale)
        region = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        if covered_fraction(region, face_box) <= config.max_overlap:
            return cx, cy, side
    return None


def cut_window(image: np.ndarray, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """The square ``side`` px around (cx, cy) (edges replicated), area-resized to ``size``: the
    crop of :func:`face3d.regress.proposals.window_crops` (a whole-image resize, then a slice) to
    within a pixel, without resizing the whole photo."""
    import cv2

    H, W = image.shape[:2]
    n = max(1, int(round(side)))
    x0, y0 = int(round(cx - (n - 1) / 2)), int(round(cy - (n - 1) / 2))  # centre of pixels x0..x0+n-1
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + n, W), min(y0 + n, H)
    if xb <= xa or yb <= ya:
        raise ValueError(f"window ({cx:.0f}, {cy:.0f}, {side:.0f}) lies outside the {W}x{H} photo")
    region = cv2.copyMakeBorder(
        image[ya:yb, xa:xb], ya - y0, y0 + n - yb, xa - x0, x0 + n - xb, cv2.BORDER_REPLICATE
    )
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA if n > size else cv2.INTER_LINEAR)


def negative_batch(
    aflw, rng: np.random.Generator, n: int, config: NegativeConfig = NegativeConfig()
) -> np.ndarray:
    """``n`` face-free crops (n, S, S, 3) uint8 of the photos of ``aflw`` (a
    :class:`face3d.eval.aflw_crops.AFLWCrops`), cut as the network's crops are."""
    S = aflw.size
    out = np.zeros((n, S, S, 3), np.uint8)
    k, misses = 0, 0
    while k < n:
        if misses > 10 * n + 100:
            raise ValueError("no face-free windows: the faces fill their photos")
        i = int(rng.integers(len(aflw)))
        img = aflw.images[i]
        face = landmark_box(aflw.samples[i].landmarks)
        win = face_free_window(rng, img.shape[1], img.shape[0], face, aflw.crop_scale, config)
        if win is None:
            misses += 1
            continue
        crop = cut_window(img, *win, S)
        if (crop.max(-1) < 8).mean() > config.max_padding:
            misses += 1
            continue
        if rng.random() < config.clutter:
            crop = clutter(rng, S, crop if rng.random() < 0.5 else None)
        if rng.random() < config.flip:
            crop = np.ascontiguousarray(crop[:, ::-1])
        out[k] = colour_jitter(rng, crop) if config.colour else crop
        k += 1
    return out


def confidence_report(faces, negatives, thresholds=(0.5, 0.9, 0.99)) -> dict:
    """How well face logits separate: ``faces`` and ``negatives`` are (N,) logits of face crops and
    face-free crops. Returns ``auroc`` (the probability that a random face outscores a random
    negative, ties half), per threshold ``t`` on the confidence ``sigmoid(logit)`` the fraction of
    faces kept (``faces_at_least_t``) and of negatives passing (``negatives_at_least_t``), and the
    median confidences."""
    from scipy.stats import rankdata

    f, n = np.asarray(faces, np.float64).ravel(), np.asarray(negatives, np.float64).ravel()
    if len(f) == 0 or len(n) == 0:
        raise ValueError("need at least one face and one negative logit")
    ranks = rankdata(np.concatenate([f, n]))
    auroc = (ranks[: len(f)].sum() - len(f) * (len(f) + 1) / 2) / (len(f) * len(n))
    out = {"faces": len(f), "negatives": len(n), "auroc": float(auroc)}
    for t in thresholds:
        lt = math.log(t / (1 - t))
        out[f"faces_at_least_{t}"] = float((f >= lt).mean())
        out[f"negatives_at_least_{t}"] = float((n >= lt).mean())
    sig = lambda x: float(1 / (1 + np.exp(-np.median(x))))  # noqa: E731
    out["median_face_confidence"], out["median_negative_confidence"] = sig(f), sig(n)
    return out


_GLYPHS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.,:;!?()-+=/%&"


def clutter(rng: np.random.Generator, size: int, ground: np.ndarray | None = None) -> np.ndarray:
    """A (size, size, 3) uint8 face-free image: 1-12 random marks (lines of text, filled or
    outlined discs and ellipses, line segments, boxes) and sometimes stripes, in random colours,
    drawn on ``ground`` (a copy) or on a flat, gradient or blurred-noise ground; then blurred or
    not, and scaled down and up (print, microscopy and screen-like textures)."""
    import cv2

    def colour() -> np.ndarray:  # mostly greys and muted tones, as in photos; some saturated
        if rng.random() < 0.3:
            return rng.integers(0, 256, 3)
        return np.clip(rng.integers(0, 256) + rng.normal(0, 20, 3), 0, 255).astype(np.int64)

    if ground is not None:
        img = np.array(ground, dtype=np.uint8, copy=True)
    else:
        r = rng.random()
        if r < 0.4:
            img = np.full((size, size, 3), colour(), np.uint8)
        elif r < 0.7:
            t = np.linspace(0, 1, size)[None, :, None] * (colour() - colour()) + colour()
            img = np.clip(np.repeat(t, size, 0), 0, 255).astype(np.uint8)
            if rng.random() < 0.5:
                img = np.ascontiguousarray(np.rot90(img, int(rng.integers(4))))
        else:
            k = int(rng.choice([4, 8, 16, 32]))
            noise = rng.integers(0, 256, (max(size // k, 2), max(size // k, 2), 3), dtype=np.uint8)
            img = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.25:  # stripes / bricks / grids
        yy, xx = np.mgrid[:size, :size].astype(np.float32)
        a, period = rng.uniform(0, np.pi), rng.uniform(4, size / 2)
        wave = np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / period) > rng.uniform(-0.5, 0.5)
        img[wave] = colour()
    for _ in range(int(rng.integers(1, 13))):
        c = tuple(int(v) for v in colour())
        thick = int(rng.integers(1, max(2, size // 12)))
        kind = rng.random()
        p = tuple(int(v) for v in rng.integers(-size // 4, size + size // 4, 2))
        if kind < 0.35:
            text = "".join(rng.choice(list(_GLYPHS), int(rng.integers(1, 12))))
            font = int(rng.choice([0, 1, 2, 3, 4, 6, 7]))
            scale = rng.uniform(0.3, 2.5) * size / 96
            cv2.putText(img, text, p, font, scale, c, max(1, thick // 2), cv2.LINE_AA)
        elif kind < 0.65:
            axes = tuple(int(v) for v in rng.integers(2, size // 2, 2))
            fill = -1 if rng.random() < 0.5 else thick
            cv2.ellipse(img, p, axes, float(rng.uniform(0, 180)), 0, 360, c, fill, cv2.LINE_AA)
        elif kind < 0.85:
            q = tuple(int(v) for v in rng.integers(-size // 4, size + size // 4, 2))
            cv2.line(img, p, q, c, thick, cv2.LINE_AA)
        else:
            q = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.rectangle(img, p, q, c, -1 if rng.random() < 0.5 else thick)
    r = rng.random()
    if r < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.0))
    elif r < 0.5:
        small = max(8, int(size * rng.uniform(0.25, 0.7)))
        img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (size, size))
    return img
