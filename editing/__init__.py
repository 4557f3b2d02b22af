"""Expression editing on top of the fitted 3DMM."""

import importlib

from editing.expressions import (
    ACTION_UNITS,
    ARKIT_NAMES,
    ExpressionSpec,
    facs_weights,
    load_presets,
    parse_expression,
    parse_expressions,
)

__all__ = [
    "ACTION_UNITS",
    "ARKIT_NAMES",
    "ExpressionSpec",
    "facs_weights",
    "load_presets",
    "parse_expression",
    "parse_expressions",
]

_LAZY = {
    "EditConfig": "editing.edit3d",
    "Editor3D": "editing.edit3d",
    "EditContext": "editing.api",
    "EditOptions": "editing.api",
    "edit_image": "editing.api",
    "edit_folder": "editing.api",
    "grid_image": "editing.api",
}


def __getattr__(name: str):
    if name in _LAZY:  # loaded on first use: ``import editing`` stays light (no torch, no model)
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'editing' has no attribute {name!r}")


__all__ += sorted(_LAZY)
