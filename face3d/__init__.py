"""face3d: fit, edit and render faces with the ICT-FaceKit 3D morphable model.

The public API that scripts and the ``face3d`` command use is re-exported here lazily,
so ``import face3d`` stays cheap and free of side effects.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "MorphableModel": "face3d.model",
    "find_model_source": "face3d.ict",
    "load_ict_arrays": "face3d.ict",
    "Face3DError": "face3d.errors",
    "read_image": "face3d.io",
    "project": "face3d.camera",
    "FitConfig": "face3d.fit",
    "FitResult": "face3d.fit",
    "FolderOptions": "face3d.fit",
    "fit_image": "face3d.fit",
    "fit_folder": "face3d.fit",
    "fit_landmarks": "face3d.fit",
    "FaceDetector": "face3d.detect",
    "LandmarkRegressor": "face3d.regress",
    "default_tta": "face3d.regress",
    "nme": "face3d.eval",
    "RenderConfig": "face3d.render",
    "render": "face3d.render",
    "extract_texture": "face3d.render",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'face3d' has no attribute {name!r}")


__all__ = sorted(_LAZY) + ["__version__"]
