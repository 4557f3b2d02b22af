"""Calibrating the regressor's landmark convention on real labelled faces.

A dataset's 68 landmarks are its own annotation convention. AFLW2000-3D's are the vertices of the
3DMM its labels were fitted with, not ICT's landmark vertices: near frontal an identity change
hides the difference, but at large yaw the jaw points, which project from the side of the head,
land up to about 15 % of the face box away from ICT's (their 3D offset is 1.5-2.6 cm). A network
that learns from synthetic renders (ICT's convention) and from AFLW photos at once then averages
the two and misses both.

:func:`calibrate_offset` finds one model-space offset per landmark, shared by all faces, that maps
ICT's landmark vertices to the dataset's points: per face, pose, scale, centre and expression are
fitted with the identity held at the mean face (so the offset is the convention's difference on
the mean face), jointly with the shared (68, 3) offset, which is then made left-right symmetric.
The offset goes into :class:`face3d.regress.network.RegressorNet`'s ``lm_offset`` buffer.
"""

from __future__ import annotations

import numpy as np
import torch

from face3d.regress.network import MIRROR_68, RegressorNet, normalise, rotation_6d_to_matrix


def symmetrise_offset(offset: torch.Tensor) -> torch.Tensor:
    """(68, 3) -> (68, 3): the mean of each offset and its mirror partner's with x negated, so
    the convention of a mirrored face is the mirror of the convention."""
    mirrored = offset[list(MIRROR_68)] * offset.new_tensor([-1.0, 1.0, 1.0])
    return 0.5 * (offset + mirrored)


def fit_faces(
    net: RegressorNet,
    crops: np.ndarray,
    landmarks: np.ndarray,
    offset: torch.Tensor | None = None,
    iterations: int = 800,
    lr: float = 0.02,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit the network's landmark model to labelled faces, identity held at the mean face.

    Per face: rotation, scale, centre and expression (initialised from the network's prediction);
    shared by all faces: the (68, 3) landmark offset, fitted when ``offset`` is None, else held.

    Args:
        net: the regressor (its landmark rows define the model). Not modified.
        crops: (N, S, S, 3) uint8 unaugmented crops of the labelled faces.
        landmarks: (N, 68, 2) their labelled landmarks, crop pixels.
        offset: (68, 3) a fixed offset, cm, or None to fit one.
        iterations, lr: Adam steps and step size.

    Returns: the offset (68, 3) (not symmetrised) and the fitted landmarks (N, 68, 2), crop pixels.
    """
    crops, landmarks = np.asarray(crops), np.asarray(landmarks)
    if crops.ndim != 4 or landmarks.shape != (len(crops), 68, 2):
        raise ValueError(
            f"need (N, S, S, 3) crops and (N, 68, 2) landmarks, got {crops.shape}, {landmarks.shape}"
        )
    was = net.training
    net.eval()
    with torch.no_grad():
        out = net(normalise(torch.from_numpy(crops)))
    net.train(was)
    gt = torch.as_tensor(landmarks, dtype=torch.float32)
    d6 = out["rotation"][:, :, :2].transpose(1, 2).reshape(-1, 6).clone().requires_grad_(True)
    centre = out["centre"].clone().requires_grad_(True)
    log_scale = out["scale"].log().clone().requires_grad_(True)
    expr_logit = torch.logit(out["expression"].clamp(1e-3, 1 - 1e-3)).clone().requires_grad_(True)
    learn = offset is None
    off = torch.zeros(68, 3) if learn else torch.as_tensor(offset, dtype=torch.float32).reshape(68, 3).clone()
    off.requires_grad_(learn)
    opt = torch.optim.Adam([d6, centre, log_scale, expr_logit] + ([off] if learn else []), lr=lr)
    base = net.lm_template.detach()  # identity at the mean face

    def project() -> torch.Tensor:
        X = base + (torch.sigmoid(expr_logit) @ net.lm_expression).reshape(-1, 68, 3) + off
        cam = X @ rotation_6d_to_matrix(d6).transpose(1, 2)
        return log_scale.exp()[:, None, None] * cam[..., :2] + centre[:, None]

    for _ in range(iterations):
        opt.zero_grad()
        loss = (project() - gt).norm(dim=-1).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return off.detach(), project()


def calibrate_offset(
    net: RegressorNet,
    crops: np.ndarray,
    landmarks: np.ndarray,
    iterations: int = 800,
    lr: float = 0.02,
) -> torch.Tensor:
    """The landmark-convention offset (68, 3), cm, model space, that best explains ``landmarks``:
    :func:`fit_faces` with the offset free, then :func:`symmetrise_offset`.

    Args: as :func:`fit_faces` (``net`` is not modified).

    Returns: the symmetrised offset (68, 3) float32.
    """
    return symmetrise_offset(fit_faces(net, crops, landmarks, None, iterations, lr)[0])
