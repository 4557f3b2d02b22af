"""Face-crop grids of a method comparison: one per input (:func:`face_grid`, rows: targets,
columns: input | one per method), a montage of the first grids of each |yaw| bin
(:func:`bin_montage`), and the report's per-bin sections showing them (:func:`bin_sections`).

Images are (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np

from editing.compare.metrics import UNKNOWN_BIN, bin_name
from face3d.eval.metrics import BIN_NAMES
from face3d.io import read_image, write_image


def face_grid(
    image: np.ndarray,
    outputs: dict[str, dict[str, np.ndarray]],
    labels: list[str],
    box: tuple[float, float, float, float],
    size: int = 160,
    margin: float = 0.35,
) -> np.ndarray:
    """Face crops side by side: rows per target label, columns input | one per method.

    Args:
        image: (H, W, 3) uint8 input.
        outputs: method -> label -> (H, W, 3) uint8 output (same size as the input).
        labels: target labels (rows, in order).
        box: the face box ``(x0, y0, x1, y1)``; the crop is its square grown by ``margin`` per side.
        size: tile side in pixels.

    Returns:
        (len(labels) * size, (1 + len(outputs)) * size, 3) uint8.
    """
    h, w = image.shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * (0.5 + margin)
    x0, y0 = max(0, round(cx - half)), max(0, round(cy - half))
    x1, y1 = min(w, round(cx + half)), min(h, round(cy + half))

    def tile(img: np.ndarray) -> np.ndarray:
        crop = img[y0:y1, x0:x1]
        if crop.size == 0:
            return np.zeros((size, size, 3), np.uint8)
        return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)

    rows = [
        np.concatenate([tile(image)] + [tile(outputs[m][label]) for m in outputs], axis=1) for label in labels
    ]
    return np.concatenate(rows, axis=0)


def bin_montage(grids: list[np.ndarray], gap: int = 8) -> np.ndarray:
    """Face grids stacked top to bottom at full size, ``gap`` white pixels between them, each padded
    with white on the right to the widest: (H_i, W_i, 3) uint8 -> (sum H_i + gap (n - 1), max W_i, 3)."""
    if not grids:
        raise ValueError("bin_montage: no grids")
    width = max(g.shape[1] for g in grids)
    parts = []
    for i, g in enumerate(grids):
        if i:
            parts.append(np.full((gap, width, 3), 255, np.uint8))
        parts.append(np.pad(g, ((0, 0), (0, width - g.shape[1]), (0, 0)), constant_values=255))
    return np.concatenate(parts, axis=0)


def bin_file(name: str) -> str:
    """The montage of |yaw| bin ``name`` relative to the report: ``grids/bin_0_30.png`` for ``[0,30)``."""
    return f"grids/bin_{re.sub(r'[^0-9A-Za-z]+', '_', name).strip('_')}.png"


def image_link(rel: str, width: int = 160) -> str:
    """An ``<img>`` of the relative path ``rel`` (``width`` px wide, lazily loaded) linked to itself."""
    src = html.escape(quote(rel))
    return f'<a href="{src}"><img src="{src}" width="{width}" loading="lazy" alt="{html.escape(rel)}"></a>'


def bin_sections(out_dir: Path, rows: list[dict], methods: list[str], first: int = 6) -> str:
    """Per |yaw| bin of ``rows`` (records with ``yaw`` and a ``grid`` path relative to ``out_dir``):
    write the montage of its first ``first`` inputs' grids to :func:`bin_file` and return the HTML
    section (an h3 with the bin's name, the montage, then every grid of the bin), bins in order."""
    by_bin: dict[str, list[str]] = {b: [] for b in (*BIN_NAMES, UNKNOWN_BIN)}
    for r in rows:
        grids = by_bin[bin_name(r.get("yaw"))]
        if r.get("grid") is not None and r["grid"] not in grids:
            grids.append(r["grid"])
    width = 120 * (1 + len(methods))
    parts = [
        "<h2>Face crops per |yaw| bin</h2>",
        f"<p>rows: targets; columns: input | {html.escape(' | '.join(methods))}; "
        f"each bin's first {first} inputs in one image at full size, then every input of the bin</p>",
    ]
    for b, grids in by_bin.items():
        if not grids:
            continue
        rel = bin_file(b)
        write_image(Path(out_dir) / rel, bin_montage([read_image(Path(out_dir) / g) for g in grids[:first]]))
        parts.append(f"<h3>{html.escape(b)}</h3><p>{min(first, len(grids))} of {len(grids)} inputs</p>")
        parts.append(image_link(rel, width))
        parts += [f"<p>{html.escape(Path(g).stem)}<br>{image_link(g, width)}</p>" for g in grids]
    return "\n".join(parts)
