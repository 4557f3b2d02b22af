"""The AFLW fine-tune's loss terms and its score: real large-pose faces with ground-truth 68
landmarks (no 3DMM labels), from the train half of the AFLW2000-3D dev set.

The synthetic "face profiling" data (:mod:`face3d.train.data`) leaves a domain gap at large yaw;
the fine-tune (:func:`face3d.train.finetune.finetune`) mixes it with crops of real photos
(:class:`face3d.eval.aflw_crops.AFLWCrops`, split by :func:`face3d.eval.aflw.split_aflw`):
:func:`aflw_losses` are the loss terms of such faces and :func:`evaluate_crops` scores a network
on the unaugmented crops.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from face3d.camera import euler_degrees
from face3d.eval.aflw_crops import AFLWCrops
from face3d.eval.metrics import nme
from face3d.regress.network import RegressorNet, normalise

# -------------------------------------------------------------------------------- losses
AFLW_WEIGHTS = {
    "landmarks": 10.0,
    "yaw": 0.5,
    "identity_prior": 0.02,
    "expression_prior": 0.05,
    "confidence": 0.5,
}


def aflw_losses(out: dict, batch: dict, size: int) -> dict[str, torch.Tensor]:
    """Loss terms of real faces without 3DMM labels.

    ``batch``: ``landmarks`` (B, 68, 2) crop pixels, ``yaw`` (B,) degrees (face3d convention),
    ``yaw_valid`` (B,) bool. Terms: landmark L1 / size (as :func:`regressor_train.losses`), yaw L1
    in radians of the rotation's Euler yaw, the identity prior ``mean(identity^2)``, an L1 pull of
    the expression weights toward 0 and the face confidence (all AFLW crops hold a face).
    """
    yaw = euler_degrees(out["rotation"])[:, 0]
    valid = batch["yaw_valid"].float()
    yaw_err = torch.deg2rad((yaw - batch["yaw"] + 180.0) % 360.0 - 180.0).abs()
    return {
        "landmarks": (out["landmarks"] - batch["landmarks"]).abs().mean() / size,
        "yaw": (yaw_err * valid).sum() / valid.sum().clamp(min=1),
        "identity_prior": out["identity"].square().mean(),
        "expression_prior": out["expression"].mean(),
        "confidence": F.binary_cross_entropy_with_logits(out["logit"], torch.ones_like(out["logit"])),
    }


@torch.no_grad()
def evaluate_crops(net: RegressorNet, data: AFLWCrops) -> dict[str, float]:
    """Unaugmented crops (no flip averaging): mean NME (%, GT box) per bin, balanced, median |yaw err|."""
    was = net.training
    net.eval()
    crops, landmarks, yaws = data.unaugmented()
    out = net(normalise(torch.from_numpy(crops)))
    net.train(was)
    err = nme(out["landmarks"], torch.from_numpy(landmarks)).numpy()
    yaw_err = np.abs(euler_degrees(out["rotation"])[:, 0].numpy() - yaws)
    res = {f"nme_bin{b}": float(err[data.bins == b].mean()) for b in range(3) if (data.bins == b).any()}
    res["nme_balanced"] = float(np.mean([res[k] for k in res]))
    res["yaw_err_median"] = float(np.median(yaw_err))
    return res
