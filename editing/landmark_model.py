"""The 2D expression model of the ``2d-warp`` baseline: ARKit weights -> offsets of the 68 landmarks.

Built once from the ICT model (``scripts/rebuild/build_landmark_model.py``) and shipped as
``assets/expressions/landmark_model.npz``, so the baseline never loads a 3D model: each of the
K = 53 expression shapes, applied to the mean face seen from the front (orthographic), moves the
68 landmark vertices; their 2D displacement per unit weight, in the **normalised frame**, is one
basis shape. The offsets of a weight vector are linear in it: ``basis^T w`` ((68, 2)), zero for
the neutral (all-zero) target.

The normalised frame: image axes (x right, y down), origin at the mean of the four eye corners
(landmarks 36, 39, 42, 45), unit the distance between the eye centres (inter-ocular distance,
IOD). A face's frame is the 2D similarity that best maps the reference's :data:`FRAME_POINTS`
(eye corners and nose, which expressions barely move) onto its detected landmarks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face3d.assets import asset_path
from face3d.errors import Face3DError

FRAME_POINTS: tuple[int, ...] = (36, 39, 42, 45, 28, 29, 30, 31, 32, 33, 34, 35)
"""Landmarks that define a face's similarity frame: the eye corners and the nose below its
bridge (27, the bridge top, rises with the inner brows)."""


def default_path() -> Path:
    """The shipped model: ``assets/expressions/landmark_model.npz``."""
    return asset_path("expressions", "landmark_model.npz")


@dataclass(frozen=True)
class Similarity:
    """A 2D similarity from the normalised frame to image pixels: ``x_img = scale * R @ x + t``.

    Attributes:
        scale: pixels per normalised unit (per IOD); rotation: (2, 2); shift: (2,) pixels.
    """

    scale: float
    rotation: np.ndarray
    shift: np.ndarray

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) normalised points -> image pixels."""
        return self.scale * points @ self.rotation.T + self.shift

    def vectors_to_image(self, vectors: np.ndarray) -> np.ndarray:
        """(..., 2) normalised offsets -> pixel offsets (rotated and scaled, not shifted)."""
        return self.scale * vectors @ self.rotation.T

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) image pixels -> normalised points."""
        return (points - self.shift) @ self.rotation / self.scale


@dataclass(frozen=True)
class LandmarkModel:
    """The linear 2D expression model (see the module docstring).

    Attributes:
        names: the K ARKit shape names, in model order.
        reference: (68, 2) the mean neutral face's landmarks in the normalised frame.
        basis: (K, 68, 2) landmark offsets per unit weight, normalised frame.
        iod_cm: the reference's inter-ocular distance in cm (normalised units -> cm).
        upper_teeth: how far the upper incisors' edge reaches below the neutral upper inner lip
            (landmark 62), normalised units.
        lower_teeth: how far the lower incisors' edge reaches above the lower inner lip (landmark
            66) with the jaw open, normalised units.
        teeth_half_width: half the width of the visible teeth arch (its front), normalised units.
        arch_depth: (M, 2) rows ``(|x|, depth)``: how far the teeth front lies behind the front
            incisors at horizontal distance ``|x|`` from the midline, both in cm.
    """

    names: tuple[str, ...]
    reference: np.ndarray
    basis: np.ndarray
    iod_cm: float
    upper_teeth: float
    lower_teeth: float
    teeth_half_width: float
    arch_depth: np.ndarray

    def __post_init__(self):
        K = len(self.names)
        if self.reference.shape != (68, 2) or self.basis.shape != (K, 68, 2):
            raise ValueError(f"reference (68, 2) and basis ({K}, 68, 2) expected, got "
                             f"{self.reference.shape} and {self.basis.shape}")  # fmt: skip

    # ------------------------------------------------------------------ io
    @classmethod
    def load(cls, path: str | Path | None = None) -> LandmarkModel:
        """Read the ``.npz`` written by :meth:`save` (None: :func:`default_path`).

        Raises:
            Face3DError: the file is missing or unreadable (the message names it).
        """
        path = Path(path) if path is not None else default_path()
        if not path.is_file():
            raise Face3DError(f"{path}: 2D landmark expression model missing (rebuild it with "
                              "scripts/rebuild/build_landmark_model.py)")  # fmt: skip
        try:
            with np.load(path, allow_pickle=False) as z:
                scalars = json.loads(str(z["scalars"]))
                return cls(
                    names=tuple(str(n) for n in z["names"]),
                    reference=z["reference"].astype(np.float64),
                    basis=z["basis"].astype(np.float64),
                    arch_depth=z["arch_depth"].astype(np.float64),
                    **{k: float(v) for k, v in scalars.items()},
                )
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise Face3DError(f"{path}: unreadable 2D landmark expression model ({err})") from None

    def save(self, path: str | Path, meta: dict | None = None) -> None:
        """Write the model as ``.npz`` (``meta``: provenance, stored as JSON text)."""
        from face3d.io import atomic_write_npz

        scalars = {
            "iod_cm": self.iod_cm,
            "upper_teeth": self.upper_teeth,
            "lower_teeth": self.lower_teeth,
            "teeth_half_width": self.teeth_half_width,
        }
        atomic_write_npz(
            path,
            names=np.array(self.names),
            reference=self.reference.astype(np.float32),
            basis=self.basis.astype(np.float32),
            arch_depth=self.arch_depth.astype(np.float32),
            scalars=np.array(json.dumps(scalars)),
            meta=np.array(json.dumps(meta or {})),
        )

    # ------------------------------------------------------------------ the model
    def offsets(self, delta: np.ndarray) -> np.ndarray:
        """(K,) weight change (target minus source) -> (68, 2) landmark offsets, normalised frame."""
        delta = np.asarray(delta, dtype=np.float64)
        if delta.shape != (len(self.names),):
            raise ValueError(f"weights: expected ({len(self.names)},), got {delta.shape}")
        return np.tensordot(delta, self.basis, axes=1)

    def frame(self, landmarks: np.ndarray) -> Similarity:
        """The similarity from the normalised frame to a face's (68, 2) pixel landmarks: the
        least-squares fit (Umeyama) of the reference's :data:`FRAME_POINTS` to the face's."""
        src = self.reference[list(FRAME_POINTS)]
        dst = np.asarray(landmarks, dtype=np.float64)[list(FRAME_POINTS)]
        mu_s, mu_d = src.mean(0), dst.mean(0)
        s, d = src - mu_s, dst - mu_d
        cov = d.T @ s / len(src)
        U, S, Vt = np.linalg.svd(cov)
        sign = np.diag([1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0])
        R = U @ sign @ Vt
        scale = float(np.trace(np.diag(S) @ sign) / (s**2).sum(1).mean())
        return Similarity(scale, R, mu_d - scale * mu_s @ R.T)
