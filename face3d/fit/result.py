"""FitResult: what a fit yields per face (a frozen dataclass of batched tensors)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from face3d.camera import euler_degrees, project, to_camera
from face3d.crop import resized_points


@dataclass(frozen=True)
class FitResult:
    """A batch of B fitted faces.

    Attributes:
        rotation: (B, 3, 3) model-to-camera rotation (OpenCV camera axes).
        translation: (B, 3) camera-space translation, cm.
        intrinsics: (B, 4) fx, fy, cx, cy in pixels.
        identity: (B, K) identity weights (first K ICT modes).
        expression: (B, K_exp) ARKit weights in [0, 1].
        landmarks_target: (B, 68, 2) the 2D landmarks fitted to, pixels.
        landmarks_fitted: (B, 68, 2) the model's anatomical landmark vertices projected, pixels
            (occluded jaw points included), of the final mesh: with a residual applied by
            :meth:`apply_residual`, the mesh with the residual.
        error_px: (B,) mean distance between the targets and their fitted correspondences
            (silhouette-adjusted on the turned-away jaw side) of the landmark fit, pixels.
        image_size: (H, W) of the image the fit refers to.
        residual: optional (B, V', 3) model-space per-vertex offsets added after the linear model
            (V' may differ from the model's V: extra rows are dropped, missing ones count as zero,
            so a face_head residual applies to the full model).
        landmarks_linear: (B, 68, 2) the linear model's ``landmarks_fitted`` when a residual was
            applied by :meth:`apply_residual`, else None.
    """

    rotation: torch.Tensor
    translation: torch.Tensor
    intrinsics: torch.Tensor
    identity: torch.Tensor
    expression: torch.Tensor
    landmarks_target: torch.Tensor
    landmarks_fitted: torch.Tensor
    error_px: torch.Tensor
    image_size: tuple[int, int]
    residual: torch.Tensor | None = None
    landmarks_linear: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.rotation.shape[0]

    @property
    def yaw_pitch_roll(self) -> torch.Tensor:
        """(B, 3) degrees (see :mod:`face3d.camera` for the convention)."""
        return euler_degrees(self.rotation)

    def vertices(self, model, expression: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, 3) model-space vertices, optionally with another expression (B, K_exp)."""
        expr = self.expression if expression is None else expression
        v = model(self.identity.to(model.template.dtype), expr.to(model.template.dtype))
        if self.residual is not None:
            r = self.residual[:, : v.shape[1]].to(v)
            v = v + torch.nn.functional.pad(r, (0, 0, 0, v.shape[1] - r.shape[1]))
        return v

    def vertices_cam(self, model, expression: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, 3) camera-space vertices."""
        return to_camera(self.vertices(model, expression), self.rotation, self.translation)

    def project_landmarks(self, model, expression: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 68, 2) anatomical landmarks projected into the image."""
        return project(model.landmarks(self.vertices_cam(model, expression)), self.intrinsics)

    def select(self, index: int) -> FitResult:
        """Face ``index`` as a batch of one."""
        sl = slice(index, index + 1)
        kw = {
            k: (getattr(self, k)[sl] if isinstance(getattr(self, k), torch.Tensor) else getattr(self, k))
            for k in self.__dataclass_fields__
        }
        return FitResult(**kw)

    def with_residual(self, residual: torch.Tensor | None) -> FitResult:
        """The same fit with ``residual`` as its mesh offsets, the landmarks left as they are (the
        mesh of a fitting stage); :meth:`apply_residual` makes a final fit whose landmarks follow."""
        return replace(self, residual=residual)

    def apply_residual(self, model, residual: torch.Tensor | None, landmark_offset=None) -> FitResult:
        """The linear fit (any residual dropped) with ``residual`` (B, V', 3) applied: its
        ``landmarks_fitted`` move as the residual moves the landmark vertices (plus
        ``landmark_offset``, (68, 3) or (B, 68, 3) cm, the fit's landmark convention), its
        ``landmarks_linear`` keep the linear fit's. A zero residual leaves the landmarks unchanged."""
        lin = self.landmarks_fitted if self.landmarks_linear is None else self.landmarks_linear
        linear = replace(self, residual=None, landmarks_fitted=lin, landmarks_linear=None)
        final = replace(linear, residual=residual)
        with torch.no_grad():
            moved = [f.landmark_points(model, landmark_offset) for f in (linear, final)]
        delta = moved[1] - moved[0]
        return replace(final, landmarks_fitted=lin + delta.to(lin), landmarks_linear=lin)

    def landmark_points(self, model, landmark_offset=None, image: bool = True) -> torch.Tensor:
        """The 68 landmark vertices of this fit's mesh (residual included) plus ``landmark_offset``
        ((68, 3) or (B, 68, 3) model-space cm, the fit's landmark convention): (B, 68, 2) projected
        pixels, or with ``image=False`` (B, 68, 3) camera-space cm."""
        pts = model.landmarks(self.vertices(model))
        if landmark_offset is not None:
            pts = pts + torch.as_tensor(landmark_offset).to(pts)
        cam = to_camera(pts, self.rotation.to(pts), self.translation.to(pts))
        return project(cam, self.intrinsics.to(pts)) if image else cam

    def resized(self, size: tuple[int, int]) -> FitResult:
        """The same fit for its image resized to ``size`` (H', W'): intrinsics and 2D landmarks
        mapped with pixel centres kept (``u' = (u + 0.5) s - 0.5`` per axis), the 3D pose as is."""
        (H, W), (h, w) = self.image_size, size
        s = torch.tensor([w / W, h / H], dtype=self.intrinsics.dtype, device=self.intrinsics.device)

        def pts(p: torch.Tensor | None) -> torch.Tensor | None:
            return None if p is None else resized_points(p, s.to(p))

        K = self.intrinsics.clone()
        K[:, :2] = K[:, :2] * s
        K[:, 2:] = pts(K[:, 2:])
        return replace(
            self,
            intrinsics=K,
            landmarks_target=pts(self.landmarks_target),
            landmarks_fitted=pts(self.landmarks_fitted),
            landmarks_linear=pts(self.landmarks_linear),
            error_px=self.error_px * float(s.prod().sqrt()),
            image_size=(int(h), int(w)),
        )

    def to(self, device) -> FitResult:
        """The same fit with every tensor on ``device``."""
        kw = {
            k: (
                getattr(self, k).to(device)
                if isinstance(getattr(self, k), torch.Tensor)
                else getattr(self, k)
            )
            for k in self.__dataclass_fields__
        }
        return FitResult(**kw)

    def detach(self) -> FitResult:
        kw = {
            k: (getattr(self, k).detach() if isinstance(getattr(self, k), torch.Tensor) else getattr(self, k))
            for k in self.__dataclass_fields__
        }
        return FitResult(**kw)
