"""The landmark / 3DMM regression network at inference: the network and its checkpoints
(:mod:`~face3d.regress.network`), crop-run-decode (:mod:`~face3d.regress.infer`,
:mod:`~face3d.regress.decode`), test-time views (:mod:`~face3d.regress.views`), the upright search
(:mod:`~face3d.regress.upright`) and the detection fallback (:mod:`~face3d.regress.proposals`).

Training it lives in :mod:`face3d.train`, which nothing here imports.
"""

from face3d.regress.infer import (
    TTA_SCALES,
    LandmarkRegressor,
    RegressorOutput,
    default_tta,
    landmark_box_from_detector_box,
)
from face3d.regress.network import MIRROR_68, RegressorConfig, RegressorNet, default_weights_dir
from face3d.regress.proposals import ProposalConfig, propose_faces
from face3d.regress.views import PROFILE_MIN_YAW, PROFILE_VIEWS, View

__all__ = [
    "MIRROR_68",
    "PROFILE_MIN_YAW",
    "PROFILE_VIEWS",
    "TTA_SCALES",
    "LandmarkRegressor",
    "ProposalConfig",
    "RegressorConfig",
    "RegressorNet",
    "RegressorOutput",
    "View",
    "default_tta",
    "default_weights_dir",
    "landmark_box_from_detector_box",
    "propose_faces",
]
