"""Expression editing on top of the fitted 3DMM."""

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
