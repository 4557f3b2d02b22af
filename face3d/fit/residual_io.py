"""Writing a residual fit: the per-vertex offsets and the UV displacement map (NPY, PNG), and the
mesh with the residual applied."""

from __future__ import annotations

import numpy as np
import torch

from face3d.export import export_obj
from face3d.fit.residual import ResidualResult, mesh_operators
from face3d.fit.result import FitResult
from face3d.io import atomic_write_bytes, write_image


def displacement_image(displacement: torch.Tensor, scale_cm: float | None = None) -> np.ndarray:
    """(C, Hd, Wd) map in cm -> (Hd, Wd, 3) uint8 visualisation: 128 + 127 * D / scale per channel;
    a 3-channel (vector) map shows x, y, z as red, green, blue, a 1-channel (normal) map as grey
    (outwards brighter). ``scale_cm`` defaults to the map's largest |value|."""
    d = displacement.detach().cpu().float().numpy().transpose(1, 2, 0)
    if d.shape[2] == 1:
        d = np.repeat(d, 3, axis=2)
    scale = float(scale_cm) if scale_cm else max(float(np.abs(d).max()), 1e-6)
    return np.clip(128 + 127 * d / scale, 0, 255).astype(np.uint8)


def save_residual(
    out_dir, stem: str, model, fit: FitResult, result: ResidualResult, texture=None, mesh: bool = True
):
    """Write ``<stem>_residual.npy`` ((V, 3) offsets, cm), ``<stem>_displacement.npy`` ((C, Hd, Wd),
    cm; C = 1 for normal maps, 3 for vector maps) and ``<stem>_displacement.png`` (when there is a
    map) and, with ``mesh``, ``<stem>_residual.obj`` (the fit's mesh with the residual applied,
    atlas UVs; ``texture`` (Ht, Wt, 3) uint8 beside it).

    Returns:
        the paths written.
    """
    import io
    from pathlib import Path


    def npy(path, arr) -> Path:
        buf = io.BytesIO()
        np.save(buf, np.asarray(arr, dtype=np.float32))
        return atomic_write_bytes(path, buf.getvalue())

    out = Path(out_dir)
    paths = [npy(out / f"{stem}_residual.npy", result.residual[0].cpu().numpy())]
    if result.displacement is not None:
        paths.append(npy(out / f"{stem}_displacement.npy", result.displacement.cpu().numpy()))
        paths.append(write_image(out / f"{stem}_displacement.png", displacement_image(result.displacement)))
    if mesh:
        verts = fit.with_residual(result.residual).vertices(model)[0]
        corner_uvs = mesh_operators(model).corner_uvs
        paths.append(export_obj(out / f"{stem}_residual.obj", verts, model.faces, corner_uvs, texture))
    return paths
