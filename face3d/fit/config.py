"""FitConfig: every setting of the landmark fitter, documented, passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`face3d.fit.fit_landmarks`.

    Attributes:
        n_identity: identity modes optimised (the first K of ICT's 100).
        fov_deg: initial (and, with ``fixed_fov``, final) field of view over the image's longer side.
        fixed_fov: keep the focal length at ``fov_deg`` instead of optimising it.
        focal_prior: weight of the log-focal prior pulling toward ``fov_deg``.
        identity_prior: weight of the Gaussian prior ``||identity||^2`` (weights ~ N(0, 1)).
        expression_prior: weight of the sparsity prior ``sum(expression)`` (weights in [0, 1]).
        expression_l2: small L2 on the expression weights (keeps the solve well posed).
        symmetry_prior: weight of ``(w_L - w_R)^2`` for each left/right pair of expression shapes
            (expressions are mostly symmetric; landmark noise is not).
        rigid_iterations: Levenberg-Marquardt iterations of the rigid stage.
        iterations: Levenberg-Marquardt iterations of the full stage (at most).
        tolerance: a stage without silhouette re-selection stops early once every face's
            accepted step lowers its cost by less than this fraction.
        silhouette: re-select the turned-away jaw side's correspondences on the outline.
        silhouette_every: iterations between silhouette re-selections.
        silhouette_min_yaw: |yaw| in degrees below which the anatomical jaw ids are kept.
        jaw_weight: weight of the 17 jaw landmarks relative to the inner ones.
        regressor_jaw_weight: ``jaw_weight`` for the regression network's own landmarks (the
            pipeline's source ``"regressor"``, :meth:`for_source`): anatomical points in the
            model's landmark convention, not an outline that slides with the pose, so they are
            trusted more. Chosen on the AFLW2000-3D dev set's train half (README, "Fitting"); a
            blend with dlib's points keeps ``jaw_weight``.
        huber_px: robust (Huber) threshold on landmark residuals, in % of the face size.
        solver: ``"lm"`` (Levenberg-Marquardt) or ``"adam"`` (first-order, for comparison).
        adam_steps: iterations of the Adam solver.
    """

    n_identity: int = 40
    fov_deg: float = 30.0
    fixed_fov: bool = False
    focal_prior: float = 2.0
    identity_prior: float = 1.0
    expression_prior: float = 2.0
    expression_l2: float = 2.0
    symmetry_prior: float = 1.0
    rigid_iterations: int = 8
    iterations: int = 20
    tolerance: float = 1e-4
    silhouette: bool = True
    silhouette_every: int = 4
    silhouette_min_yaw: float = 20.0
    jaw_weight: float = 0.6
    regressor_jaw_weight: float = 1.5
    huber_px: float = 3.0
    solver: str = "lm"
    adam_steps: int = 300

    def for_source(self, source: str) -> FitConfig:
        """These settings for one landmark source of :func:`face3d.fit.pipeline.fit_detections`:
        ``"dlib"`` as they are; ``"blend"`` without silhouette re-selection (the targets are in the
        network's landmark convention); ``"regressor"`` also with ``regressor_jaw_weight``."""
        if source == "dlib":
            return self
        if source == "blend":
            return replace(self, silhouette=False)
        if source == "regressor":
            return replace(self, silhouette=False, jaw_weight=self.regressor_jaw_weight)
        raise ValueError(f"landmark source must be 'dlib', 'blend' or 'regressor', got {source!r}")

    def __post_init__(self):
        if self.solver not in ("lm", "adam"):
            raise ValueError(f"solver must be 'lm' or 'adam', got {self.solver!r}")
        if not 0 <= self.n_identity <= 100:
            raise ValueError(f"n_identity must be in [0, 100], got {self.n_identity}")
        if not 1.0 < self.fov_deg < 170.0:
            raise ValueError(f"fov_deg must be in (1, 170), got {self.fov_deg}")
