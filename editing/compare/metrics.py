"""Metrics for comparing expression-editing methods on the same inputs and targets.

Four families, each a small function on arrays (the model-running helpers are marked as such):

* **identity** - dlib's 128-d face descriptor (ResNet, LFW 99.38 %) of the input face vs the output
  face: Euclidean distance, same person when < :data:`IDENTITY_THRESHOLD` (0.6); and whether dlib
  still detects a face in the output (:func:`identity_metrics`).
* **preservation** - PSNR and SSIM of the output vs the input computed only OUTSIDE the dilated face
  mask (:func:`masked_psnr`, :func:`masked_ssim`, :func:`preservation_metrics`): what an edit should
  leave untouched. Identical images give PSNR ``inf`` and SSIM 1.
* **realism** - KID (kernel inception distance, Binkowski et al. 2018: unbiased MMD² with the cubic
  polynomial kernel ``k(x, y) = (x.y / d + 1)^3``) between output features and real-photo features
  (:func:`kid`). Inception is not available offline, so the features are either ``"fer"`` - the
  128-d penultimate layer of our FER2013 classifier (:meth:`editing.compare.fer.FerClassifier.features`)
  - or ``"dlib"`` - dlib's 128-d identity descriptors. Name which (``kid_fer`` / ``kid_dlib``): the
  numbers are NOT comparable with published Inception KIDs, only between methods on the same data.
* **statistics** - seeded bootstrap 95 % intervals of a mean (:func:`bootstrap_ci`) and grouping by
  |yaw| bin (:func:`group_by_yaw`, bins of :mod:`face3d.eval.metrics`).

Images are (H, W, 3) uint8 RGB; masks (H, W) bool, True on the (dilated) face region.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import cv2
import numpy as np
from numpy.typing import NDArray
from skimage.metrics import structural_similarity

from face3d.detect.boxes import iou
from face3d.detect.dlib_detector import (
    FaceDetector,
    descriptor_distance,
    face_descriptor,
    predict_landmarks,
)
from face3d.eval.metrics import BIN_NAMES, yaw_bin

IDENTITY_THRESHOLD = 0.6
"""dlib's same-person threshold on the descriptor distance."""

PSNR_CAP = 100.0
"""Summaries clip PSNR here (dB): identical backgrounds give ``inf``, which no mean can hold."""

UNKNOWN_BIN = "unknown"


# ------------------------------------------------------------------------------ checks
def _check_image(image, name: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape, dtype = getattr(image, "shape", None), getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"{name}: expected (H, W, 3) uint8, got shape {shape} dtype {dtype}")
    return image


def _check_pair(a, b, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b = _check_image(a, "input"), _check_image(b, "output")
    if a.shape != b.shape:
        raise ValueError(f"input {a.shape} and output {b.shape} differ in shape")
    mask = np.asarray(mask)
    if mask.shape != a.shape[:2] or mask.dtype != bool:
        raise ValueError(f"mask: expected (H, W) = {a.shape[:2]} bool, got {mask.shape} {mask.dtype}")
    if mask.all():
        raise ValueError("mask covers the whole image: nothing outside it to compare")
    return a, b, mask


# ------------------------------------------------------------------------------ identity
def same_identity(distance: float, threshold: float = IDENTITY_THRESHOLD) -> bool:
    """True when a descriptor distance means the same person (dlib: < 0.6)."""
    return bool(distance < threshold)


def match_box(box: Sequence[float], boxes: Iterable[Sequence[float]], min_iou: float = 0.3) -> int | None:
    """Index of the box in ``boxes`` overlapping ``box`` most (IoU >= ``min_iou``), else None.
    Boxes are ``(x0, y0, x1, y1)``."""
    best, best_iou = None, min_iou
    for i, other in enumerate(boxes):
        overlap = iou(box, other)
        if overlap >= best_iou:
            best, best_iou = i, overlap
    return best


def locate_output_face(
    image_out: np.ndarray, box_in: Sequence[float], detector=None
) -> tuple[np.ndarray, bool]:
    """Find the input's face again in an edited image (runs dlib's detector and predictor).

    The output is re-detected and the detection overlapping ``box_in`` most (IoU >= 0.3) is taken;
    when none does, the landmarks are predicted in ``box_in`` itself.

    Args:
        image_out: (H, W, 3) uint8 edited image.
        box_in: the input face's detector box ``(x0, y0, x1, y1)``.
        detector: a :class:`face3d.detect.FaceDetector` (default settings when None).

    Returns:
        ((68, 2) landmarks in the output, whether a face was detected there).
    """
    _check_image(image_out, "output")
    detector = detector if detector is not None else FaceDetector()
    found = detector.detect(image_out)
    k = match_box(box_in, [d.box for d in found])
    return predict_landmarks(image_out, found[k].box if k is not None else tuple(box_in)), k is not None


def identity_metrics(
    image_in: np.ndarray,
    image_out: np.ndarray,
    landmarks_in: np.ndarray,
    box_in: Sequence[float],
    detector=None,
    descriptor_in: np.ndarray | None = None,
) -> dict:
    """Identity kept? Runs dlib (detector, landmarks, recogniser): not pure, ~0.1-1 s per call.

    The output face is found with :func:`locate_output_face`, so the distance is always defined and
    ``face_detected`` says whether dlib's detector still finds the face.

    Args:
        image_in, image_out: (H, W, 3) uint8, same shape.
        landmarks_in: (68, 2) input landmarks (the descriptor's alignment).
        box_in: the input face's detector box ``(x0, y0, x1, y1)``.
        detector: a :class:`face3d.detect.FaceDetector` (default settings when None).
        descriptor_in: the input's (128,) descriptor when already computed (one per input, not per
            method and target).

    Returns:
        ``{"identity_distance": float, "same_identity": bool, "face_detected": bool,
        "descriptor_out": (128,) float64}`` (drop ``descriptor_out`` before tabulating).
    """
    _check_image(image_in, "input")
    if image_in.shape != _check_image(image_out, "output").shape:
        raise ValueError(f"input {image_in.shape} and output {image_out.shape} differ in shape")
    if descriptor_in is None:
        descriptor_in = face_descriptor(image_in, landmarks_in)
    lm_out, detected = locate_output_face(image_out, box_in, detector)
    desc_out = face_descriptor(image_out, lm_out)
    dist = descriptor_distance(descriptor_in, desc_out)
    return {
        "identity_distance": dist,
        "same_identity": same_identity(dist),
        "face_detected": detected,
        "descriptor_out": desc_out,
    }


# ------------------------------------------------------------------------------ preservation
def masked_psnr(image_in: np.ndarray, image_out: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB, peak 255) over the pixels OUTSIDE ``mask`` (all channels).

    Args:
        image_in, image_out: (H, W, 3) uint8, same shape.
        mask: (H, W) bool, True on the face region (excluded).

    Returns:
        ``inf`` when those pixels are identical.
    """
    a, b, mask = _check_pair(image_in, image_out, mask)
    keep = ~mask
    diff = a[keep].astype(np.float64) - b[keep].astype(np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0**2 / mse)


def masked_ssim(image_in: np.ndarray, image_out: np.ndarray, mask: np.ndarray, win_size: int = 7) -> float:
    """Mean SSIM (skimage, Gaussian-free 7x7 windows, per channel) over windows lying OUTSIDE ``mask``.

    The SSIM map is averaged over pixels at least ``win_size // 2`` px away from the mask, so no
    window that contributes sees a face pixel. When the mask leaves no such pixel, the plain outside
    pixels are used.

    Args:
        image_in, image_out: (H, W, 3) uint8, same shape (each side >= ``win_size``).
        mask: (H, W) bool, True on the face region (excluded).

    Returns:
        SSIM in [-1, 1]; 1 for identical backgrounds.
    """
    a, b, mask = _check_pair(image_in, image_out, mask)
    if min(a.shape[:2]) < win_size:
        raise ValueError(f"images must be at least {win_size} px per side for SSIM, got {a.shape[:2]}")
    _, smap = structural_similarity(a, b, win_size=win_size, channel_axis=2, data_range=255, full=True)
    r = win_size // 2
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
    keep = ~grown if (~grown).any() else ~mask
    return float(np.clip(smap.mean(axis=2)[keep].mean(), -1.0, 1.0))  # float error can pass 1


def changed_fraction(image_in: np.ndarray, image_out: np.ndarray, mask: np.ndarray) -> float:
    """Share of the pixels OUTSIDE ``mask`` whose value changed at all (any channel), in [0, 1]."""
    a, b, mask = _check_pair(image_in, image_out, mask)
    return float(np.any(a != b, axis=2)[~mask].mean())


def preservation_metrics(image_in: np.ndarray, image_out: np.ndarray, mask: np.ndarray) -> dict:
    """``{"psnr_bg", "ssim_bg", "changed_bg"}`` outside ``mask`` ((H, W) bool); see the functions."""
    return {
        "psnr_bg": masked_psnr(image_in, image_out, mask),
        "ssim_bg": masked_ssim(image_in, image_out, mask),
        "changed_bg": changed_fraction(image_in, image_out, mask),
    }


# ------------------------------------------------------------------------------ expression
def expression_metrics(probs_out: np.ndarray, target: int, probs_in: np.ndarray | None = None) -> dict:
    """How much the output reads as the target class to the FER classifier.

    Args:
        probs_out: (C,) output class probabilities; ``probs_in``: (C,) the input's, optional.
        target: index of the target class.

    Returns:
        ``{"p_target", "hit"}`` (argmax is the target) and, with ``probs_in``, ``"p_target_gain"``.
    """
    p = np.asarray(probs_out, dtype=np.float64)
    if p.ndim != 1 or not 0 <= target < p.size:
        raise ValueError(f"probs_out: expected (C,) with target < C, got {p.shape} and target {target}")
    out = {"p_target": float(p[target]), "hit": bool(int(np.argmax(p)) == target)}
    if probs_in is not None:
        q = np.asarray(probs_in, dtype=np.float64)
        if q.shape != p.shape:
            raise ValueError(f"probs_in {q.shape} and probs_out {p.shape} differ")
        out["p_target_gain"] = float(p[target] - q[target])
    return out


def refit_metrics(refit: np.ndarray | None, target: np.ndarray, source: np.ndarray) -> dict:
    """Expression metric (b): the 3DMM expression re-fitted on the output against the target.

    It favours the 3D methods, whose outputs are renders of the very model being re-fitted.

    Args:
        refit: (K,) weights fitted on the output, or None when no face was found there.
        target: (K,) target weights; ``source``: (K,) the input's fitted weights.

    Returns:
        ``{"refit_mae"}``: mean |refit - target|, and ``"refit_gain"``: how much closer to the target
        than the input's own weights (``mean |source - target| - refit_mae``); both None without a refit.
    """
    t, s = np.asarray(target, np.float64), np.asarray(source, np.float64)
    if t.ndim != 1 or t.shape != s.shape or (refit is not None and np.shape(refit) != t.shape):
        raise ValueError(
            f"refit/target/source: expected (K,) each, got {np.shape(refit)}, {t.shape}, {s.shape}"
        )
    if refit is None:
        return {"refit_mae": None, "refit_gain": None}
    mae = float(np.abs(np.asarray(refit, np.float64) - t).mean())
    return {"refit_mae": mae, "refit_gain": float(np.abs(s - t).mean()) - mae}


# ------------------------------------------------------------------------------ realism
def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """KID's kernel ``(x.y / d + coef0) ** degree``: (N, d), (M, d) -> (N, M) float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between samples (N, d) and (M, d) (N, M >= 2) under :func:`polynomial_kernel`."""
    n, m = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    sxx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kid(
    features_fake: np.ndarray,
    features_real: np.ndarray,
    n_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel inception distance (unbiased MMD², cubic polynomial kernel) on given features.

    Computed as in Binkowski et al. (2018): the mean and standard deviation of the unbiased MMD² over
    ``n_subsets`` random subsets of ``min(subset_size, N, M)`` rows of each set (without replacement).
    Lower is better; 0 in expectation for equal distributions, and it can be slightly negative.

    Args:
        features_fake: (N, d) features of edited outputs (e.g. ``"fer"``: FER penultimate layer, or
            ``"dlib"``: face descriptors - name which alongside the number).
        features_real: (M, d) features of real photos, same extractor.
        seed: seeds the subset draws.

    Returns:
        (mean, std) of MMD² over the subsets (std 0 when every subset is the whole set).
    """
    x, y = np.asarray(features_fake, np.float64), np.asarray(features_real, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"kid: expected (N, d) and (M, d) features, got {x.shape} and {y.shape}")
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise ValueError(f"kid needs at least 2 samples per set, got {len(x)} and {len(y)}")
    if size == len(x) == len(y):
        return mmd2_unbiased(x, y), 0.0
    rng = np.random.default_rng(seed)
    vals = [
        mmd2_unbiased(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
        for _ in range(n_subsets)
    ]
    return float(np.mean(vals)), float(np.std(vals))


def split_kid(
    fakes: dict[str, np.ndarray], real: np.ndarray, splits: int = 200, seed: int = 0
) -> dict[str, NDArray[np.float64]]:
    """KID x 100 of several methods' features against the real ones, over random half-splits.

    Row i of every array comes from the same face. Features are standardised by the real ones (the
    cubic kernel needs unit scale). In each split the faces are halved at random, and a method's
    rows of one half meet the real rows of the other (a crop never meets its own photo), both ways
    averaged. One fixed split of about a hundred faces swings by several units; the median over
    splits does not, and the methods share their splits, so differences are paired.

    Args:
        fakes: name -> (N, d) features; real: (N, d).
    Returns:
        name -> (splits,) KID x 100 per split.
    """
    z = np.asarray(real, np.float64)
    n = len(z)
    if n < 8 or any(np.shape(f) != z.shape for f in fakes.values()):
        raise ValueError(f"split_kid: needs 8+ faces and (N, d) arrays like the real {z.shape}")
    mu, sd = z.mean(0), z.std(0) + 1e-6
    z, f = (z - mu) / sd, {k: (np.asarray(v, np.float64) - mu) / sd for k, v in fakes.items()}
    rng, half, out = np.random.default_rng(seed), n // 2, {k: [] for k in fakes}
    for _ in range(splits):
        p = rng.permutation(n)
        a, b = p[:half], p[half : 2 * half]
        for k, x in f.items():
            both = kid(x[a], z[b], subset_size=half)[0] + kid(x[b], z[a], subset_size=half)[0]
            out[k].append(50.0 * both)
    return {k: np.array(v) for k, v in out.items()}


# ------------------------------------------------------------------------------ statistics
def finite_values(values: Iterable, cap: float | None = None) -> NDArray[np.float64]:
    """Numbers of ``values`` as (K,) float64: None/NaN dropped, bools as 0/1, ``±inf`` clipped to
    ``±cap`` when a cap is given (else kept)."""
    out = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    arr = np.asarray(out, dtype=np.float64)
    return np.clip(arr, -cap, cap) if cap is not None else arr


def bootstrap_ci(
    values: Iterable, n_boot: int = 2000, level: float = 0.95, seed: int = 0, cap: float | None = None
) -> tuple[float, float, float, int]:
    """Mean and percentile-bootstrap interval of the mean.

    Args:
        values: numbers (None/NaN are dropped; see :func:`finite_values` for ``cap``, which is not
            applied when every value is the same infinity).
        n_boot: resamples (with replacement, same size); ``level``: interval coverage (0.95).
        seed: seeds the resampling, so reports are reproducible.

    Returns:
        (mean, low, high, n): NaNs and n = 0 when there is nothing; low = high = mean for n = 1.
    """
    raw = finite_values(values)
    n = len(raw)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    if np.all(raw == raw[0]) and math.isinf(raw[0]):  # all +inf (identical backgrounds): keep inf
        return float(raw[0]), float(raw[0]), float(raw[0]), n
    arr = finite_values(raw, cap)
    mean = float(arr.mean())
    if n == 1 or not np.all(np.isfinite(arr)) or np.all(arr == arr[0]):
        return mean, mean, mean, n
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return mean, float(lo), float(hi), n


def bin_name(yaw_deg: float | None) -> str:
    """|yaw| bin name (``"[0,30)"``, ``"[30,60)"``, ``"[60,90]"``) or ``"unknown"`` for None/NaN."""
    if yaw_deg is None or not math.isfinite(float(yaw_deg)):
        return UNKNOWN_BIN
    return BIN_NAMES[yaw_bin(float(yaw_deg))]


def group_by_yaw(records: Iterable[dict], key: str = "yaw") -> dict[str, list[dict]]:
    """Records grouped by the |yaw| bin of ``record[key]`` (degrees), in bin order; empty bins are
    left out and records without a yaw go to ``"unknown"`` (last)."""
    groups: dict[str, list[dict]] = {name: [] for name in (*BIN_NAMES, UNKNOWN_BIN)}
    for r in records:
        groups[bin_name(r.get(key))].append(r)
    return {k: v for k, v in groups.items() if v}


def summarize(
    records: Sequence[dict],
    metric: str,
    group: Callable[[dict], str],
    cap: float | None = None,
    seed: int = 0,
) -> dict[str, dict]:
    """Bootstrap summary of ``record[metric]`` per ``group(record)``: group -> ``{"mean", "low",
    "high", "n"}`` (groups in first-seen order)."""
    by: dict[str, list] = {}
    for r in records:
        by.setdefault(group(r), []).append(r.get(metric))
    out = {}
    for g, vals in by.items():
        mean, lo, hi, n = bootstrap_ci(vals, seed=seed, cap=cap)
        out[g] = {"mean": mean, "low": lo, "high": hi, "n": n}
    return out
