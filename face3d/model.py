"""MorphableModel: the ICT-FaceKit linear face model as a buffers-only ``nn.Module``.

``vertices = template + identity @ identity_basis + expression @ expression_basis``
(cm, model space: +y up, face toward +z). I/O lives in :mod:`face3d.ict`; ``__init__`` takes
arrays, ``from_dir``/``from_file`` load them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from face3d import ict
from face3d.errors import InputError

#: Vertex subsets: name -> last vertex (inclusive). Each is a prefix of the ICT order.
SUBSETS: dict[str, int] = {
    "face": ict.FACE_LAST,  # full face area only
    "face_head": ict.HEAD_LAST,  # face + head and neck (default, for photo fitting)
    "full": ict.VERTEX_REGIONS["eye_extras"][1],  # everything: mouth and eye sockets, gums, teeth, eyes
}


class MorphableModel(nn.Module):
    """Linear 3DMM with ARKit-named expressions. Holds buffers only (no parameters).

    Args:
        template: (V, 3) neutral vertices, cm.
        identity_basis: (K_id, V, 3) identity modes (weights ~ N(0, 1)).
        expression_basis: (K_exp, V, 3) expression deltas (weights in [0, 1]).
        faces: (F, 3) triangle vertex indices.
        face_uvs: (F, 3) indices into ``uvs`` per triangle corner.
        uvs: (T, 2) texture coordinates in [0, 1], origin bottom-left.
        expression_names: K_exp ARKit names.
        landmark_ids: (68,) vertex ids of the iBUG 68 landmarks.
        jaw_contour_right / jaw_contour_left: candidate outline vertices per jaw side.
        regions: name -> (first, last) vertex (inclusive) for regions inside this subset.
    """

    def __init__(
        self,
        template: np.ndarray,
        identity_basis: np.ndarray,
        expression_basis: np.ndarray,
        faces: np.ndarray,
        face_uvs: np.ndarray,
        uvs: np.ndarray,
        expression_names: tuple[str, ...] | list[str],
        landmark_ids: tuple[int, ...] = ict.LANDMARK_IDS,
        jaw_contour_right: tuple[int, ...] = ict.JAW_CONTOUR_RIGHT,
        jaw_contour_left: tuple[int, ...] = ict.JAW_CONTOUR_LEFT,
        regions: Mapping[str, tuple[int, int]] | None = None,
    ):
        super().__init__()
        V = template.shape[0]
        if template.shape != (V, 3):
            raise ValueError(f"template: expected (V, 3), got {template.shape}")
        for name, basis in (("identity_basis", identity_basis), ("expression_basis", expression_basis)):
            if basis.ndim != 3 or basis.shape[1:] != (V, 3):
                raise ValueError(f"{name}: expected (K, {V}, 3), got {basis.shape}")
        if len(expression_names) != expression_basis.shape[0]:
            raise ValueError("expression_names must name every expression shape")
        f32 = torch.float32
        self.register_buffer("template", torch.as_tensor(np.asarray(template), dtype=f32))
        self.register_buffer(
            "identity_basis", torch.as_tensor(np.asarray(identity_basis), dtype=f32).reshape(-1, V * 3)
        )
        self.register_buffer(
            "expression_basis",
            torch.as_tensor(np.asarray(expression_basis), dtype=f32).reshape(-1, V * 3),
        )
        self.register_buffer("faces", torch.as_tensor(np.asarray(faces), dtype=torch.int64))
        self.register_buffer("face_uvs", torch.as_tensor(np.asarray(face_uvs), dtype=torch.int64))
        self.register_buffer("uvs", torch.as_tensor(np.asarray(uvs), dtype=f32))
        self.register_buffer("landmark_ids", torch.as_tensor(landmark_ids, dtype=torch.int64))
        self.register_buffer("jaw_contour_right", torch.as_tensor(jaw_contour_right, dtype=torch.int64))
        self.register_buffer("jaw_contour_left", torch.as_tensor(jaw_contour_left, dtype=torch.int64))
        self.expression_names: tuple[str, ...] = tuple(expression_names)
        self._expression_index = {n: i for i, n in enumerate(self.expression_names)}
        self.regions: dict[str, tuple[int, int]] = dict(regions or {})

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls, arrays: ict.ICTArrays, subset: str = "face_head", n_identity: int | None = None
    ) -> MorphableModel:
        """Build from parsed ICT arrays.

        Args:
            subset: ``"face_head"`` (vertices 0-11247, default), ``"face"`` or ``"full"``.
            n_identity: keep the first K_id identity modes (default: all 100).
        """
        if subset not in SUBSETS:
            raise InputError(f"unknown vertex subset {subset!r}; choose from {', '.join(SUBSETS)}")
        last = SUBSETS[subset]
        V = last + 1
        K = arrays.identity.shape[0] if n_identity is None else int(n_identity)
        if not 0 <= K <= arrays.identity.shape[0]:
            raise InputError(f"n_identity must be in [0, {arrays.identity.shape[0]}], got {K}")
        keep = (arrays.faces <= last).all(axis=1)
        regions = {k: v for k, v in ict.VERTEX_REGIONS.items() if v[1] <= last}
        return cls(
            template=arrays.template[:V],
            identity_basis=arrays.identity[:K, :V],
            expression_basis=arrays.expression[:, :V],
            faces=arrays.faces[keep],
            face_uvs=arrays.face_uvs[keep],
            uvs=arrays.uvs,
            expression_names=arrays.expression_names,
            regions=regions,
        )

    @classmethod
    def from_dir(
        cls,
        path: str | os.PathLike | None = None,
        subset: str = "face_head",
        n_identity: int | None = None,
        use_cache: bool = True,
    ) -> MorphableModel:
        """Load ICT-FaceKit from a ``FaceXModel`` folder or an archive (None: default search)."""
        return cls.from_arrays(ict.load_ict_arrays(path, use_cache=use_cache), subset, n_identity)

    from_file = from_dir

    # ------------------------------------------------------------------ sizes
    @property
    def n_vertices(self) -> int:
        return self.template.shape[0]

    @property
    def n_identity(self) -> int:
        return self.identity_basis.shape[0]

    @property
    def n_expression(self) -> int:
        return self.expression_basis.shape[0]

    # ------------------------------------------------------------------ evaluation
    def _coeffs(self, w: torch.Tensor | None, K: int, batch: int, name: str) -> torch.Tensor | None:
        if w is None:
            return None
        if w.dim() != 2 or w.shape[1] > K:
            raise ValueError(f"{name}: expected (B, K<={K}), got {tuple(w.shape)}")
        if w.shape[0] != batch:
            raise ValueError(f"{name}: batch {w.shape[0]} != {batch}")
        return w

    def forward(
        self,
        identity: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """Vertices for given coefficients.

        Args:
            identity: (B, K) with K <= K_id (the first K modes are used), or None.
            expression: (B, K_exp) ARKit weights, or None.
            batch_size: B when both are None.
        Returns:
            vertices: (B, V, 3) model space, cm.
        """
        B = next((w.shape[0] for w in (identity, expression) if w is not None), batch_size or 1)
        identity = self._coeffs(identity, self.n_identity, B, "identity")
        expression = self._coeffs(expression, self.n_expression, B, "expression")
        flat = self.template.reshape(1, -1).expand(B, -1)
        if identity is not None:
            flat = flat + identity.to(flat.dtype) @ self.identity_basis[: identity.shape[1]]
        if expression is not None:
            flat = flat + expression.to(flat.dtype) @ self.expression_basis[: expression.shape[1]]
        return flat.reshape(B, -1, 3)

    def landmarks(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) -> (B, 68, 3): the iBUG 68 landmark vertices."""
        if vertices.dim() != 3 or vertices.shape[1] != self.n_vertices:
            raise ValueError(f"vertices: expected (B, {self.n_vertices}, 3), got {tuple(vertices.shape)}")
        return vertices[:, self.landmark_ids]

    # ------------------------------------------------------------------ expression names
    def expression_index(self, name: str) -> int:
        """Index of an ARKit expression name (raises InputError listing the valid names)."""
        try:
            return self._expression_index[name]
        except KeyError:
            raise InputError(
                f"unknown expression {name!r}; valid: {', '.join(self.expression_names)}"
            ) from None

    def expression_vector(
        self, weights: Mapping[str, float], batch_size: int = 1, dtype=None, device=None
    ) -> torch.Tensor:
        """ARKit name -> weight mapping as a (B, K_exp) tensor (unnamed weights are 0)."""
        out = torch.zeros(
            batch_size,
            self.n_expression,
            dtype=dtype or self.template.dtype,
            device=device or self.template.device,
        )
        for name, value in weights.items():
            out[:, self.expression_index(name)] = float(value)
        return out

    def expression_dict(self, expression: torch.Tensor) -> dict[str, float]:
        """(K_exp,) weights -> {ARKit name: weight}."""
        values = expression.detach().reshape(-1).tolist()
        return dict(zip(self.expression_names, values, strict=True))

    def region_mask(self, *names: str) -> torch.Tensor:
        """(V,) bool mask of the vertices in the named regions of this subset."""
        mask = torch.zeros(self.n_vertices, dtype=torch.bool, device=self.template.device)
        for n in names:
            if n not in self.regions:
                raise InputError(f"unknown region {n!r}; valid: {', '.join(self.regions)}")
            a, b = self.regions[n]
            mask[a : b + 1] = True
        return mask

    def extra_repr(self) -> str:
        return (
            f"V={self.n_vertices}, F={self.faces.shape[0]}, K_id={self.n_identity}, K_exp={self.n_expression}"
        )
