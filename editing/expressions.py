"""Target expressions for editing: presets, FACS Action Units and raw ARKit weights.

The ICT-FaceKit model has 53 expression shapes named after Apple ARKit blendshapes, weights in
[0, 1]; ``_L``/``_R`` are the subject's own left/right (``mouthSmile_L`` moves the +x side of the
template, which faces +z). A target expression is given as text and parsed into an
:class:`ExpressionSpec`, which maps a fitted expression vector to an edited one.

Spec syntax (see :func:`parse_expressions`):

* a preset name from ``assets/expressions/presets.json``: ``happy``;
* a FACS code, ``+``-joined, with optional side prefix and intensity letter: ``6+12``, ``R12A+R14A``,
  ``1+2+5B+26``;
* ``NAME=VALUE`` items joined by ``,``: Action Units (``AU12=0.8``, ``au6=C``, ``AU12_R=0.3``,
  ``R12=0.3``) and ARKit shapes (``mouthSmile_L=0.7``, ``jawOpen=0.3``), mixed freely.

Action Units map to ARKit shapes through :data:`ACTION_UNITS` (the ICT table in
``../shared/ICT-FaceKit/NOTES.md`` plus AU23, AU25 and AU26, which it lacks). An AU value ``v``
sets each of its shapes to ``v * AU_GAIN[au]``; when two AUs drive the same shape the larger value
wins; an explicit ARKit item then sets its shape exactly. FACS letters A-E mean
0.2/0.4/0.6/0.8/1.0 and an unmarked AU in a FACS code means :data:`DEFAULT_AU_INTENSITY` (0.7).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from face3d.assets import asset_path
from face3d.errors import InputError

#: The 53 ICT-FaceKit expression shapes in model order (``vertex_indices.json``).
ARKIT_NAMES: tuple[str, ...] = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R",
    "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R",
    "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R",
    "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R",
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R",
    "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R",
    "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R", "mouthStretch_L",
    "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L", "noseSneer_R",
)  # fmt: skip

#: FACS Action Unit -> ARKit shapes it drives.
ACTION_UNITS: dict[int, tuple[str, ...]] = {
    1: ("browInnerUp_L", "browInnerUp_R"),
    2: ("browOuterUp_L", "browOuterUp_R"),
    4: ("browDown_L", "browDown_R"),
    5: ("eyeWide_L", "eyeWide_R"),
    6: ("cheekSquint_L", "cheekSquint_R"),
    7: ("eyeSquint_L", "eyeSquint_R"),
    9: ("noseSneer_L", "noseSneer_R"),
    10: ("mouthShrugUpper",),
    11: ("mouthUpperUp_L", "mouthUpperUp_R"),
    12: ("mouthSmile_L", "mouthSmile_R"),
    14: ("mouthDimple_L", "mouthDimple_R"),
    15: ("mouthFrown_L", "mouthFrown_R"),
    16: ("mouthLowerDown_L", "mouthLowerDown_R"),
    17: ("mouthShrugLower",),
    18: ("mouthPucker",),
    20: ("mouthStretch_L", "mouthStretch_R"),
    22: ("mouthFunnel",),
    23: ("mouthPress_L", "mouthPress_R"),  # not in the ICT table: ARKit has no lip tightener
    24: ("mouthPress_L", "mouthPress_R"),
    25: ("jawOpen",),  # not in the ICT table: lips part via a slight jaw opening (gain 0.2)
    26: ("jawOpen",),  # not in the ICT table: jaw drop = half of AU27 (gain 0.5)
    27: ("jawOpen",),
    28: ("mouthRollLower", "mouthRollUpper"),
    29: ("jawForward",),
    30: ("jawLeft",),  # jaw sideways: ICT lists jawLeft / jawRight; we use jawLeft (subject's left)
    33: ("cheekPuff_L", "cheekPuff_R"),
    45: ("eyeBlink_L", "eyeBlink_R"),
    61: ("eyeLookOut_L", "eyeLookIn_R"),  # eyes turn to the subject's left
    62: ("eyeLookOut_R", "eyeLookIn_L"),  # eyes turn to the subject's right
    63: ("eyeLookUp_L", "eyeLookUp_R"),
    64: ("eyeLookDown_L", "eyeLookDown_R"),
}

#: FACS names of the Action Units in :data:`ACTION_UNITS`.
AU_NAMES: dict[int, str] = {
    1: "inner brow raiser", 2: "outer brow raiser", 4: "brow lowerer", 5: "upper lid raiser",
    6: "cheek raiser", 7: "lid tightener", 9: "nose wrinkler", 10: "upper lip raiser",
    11: "nasolabial deepener", 12: "lip corner puller", 14: "dimpler", 15: "lip corner depressor",
    16: "lower lip depressor", 17: "chin raiser", 18: "lip pucker", 20: "lip stretcher",
    22: "lip funneler", 23: "lip tightener", 24: "lip pressor", 25: "lips part", 26: "jaw drop",
    27: "mouth stretch", 28: "lip suck", 29: "jaw thrust", 30: "jaw sideways", 33: "cheek blow",
    45: "blink", 61: "eyes turn left", 62: "eyes turn right", 63: "eyes up", 64: "eyes down",
}  # fmt: skip

#: Scale from AU intensity to shape weight (1.0 when absent).
AU_GAIN: dict[int, float] = {25: 0.2, 26: 0.5}

#: FACS intensity letters (trace .. maximum) as weights.
FACS_INTENSITY: dict[str, float] = {"A": 0.2, "B": 0.4, "C": 0.6, "D": 0.8, "E": 1.0}

#: Intensity of an AU written without a letter in a FACS code (``6+12``).
DEFAULT_AU_INTENSITY = 0.7

MODES = ("replace", "add")

_FACS_ITEM = re.compile(r"^(?:AU)?([LR])?(\d+)([A-E])?$", re.IGNORECASE)
_AU_KEY = re.compile(r"^(?:AU(\d+)(?:_([LR]))?|([LR])(\d+))$", re.IGNORECASE)
_PRESET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


# ------------------------------------------------------------------ presets
def default_presets_path() -> Path:
    """``assets/expressions/presets.json`` of this source tree."""
    return asset_path("expressions", "presets.json")


def load_presets(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """Read the preset file (at call time) as ``{preset: {ARKit name: weight}}``.

    Raises:
        InputError: the file is missing or unreadable, is not valid JSON, or has a preset with a bad
            name, an unknown ARKit shape or a weight outside [0, 1]. The message names the file.
    """
    path = Path(path) if path is not None else default_presets_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"expression preset file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read expression preset file {path}: {_one_line(err)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("presets"), dict):
        raise InputError(f"expression preset file {path}: expected an object with a 'presets' object")
    out: dict[str, dict[str, float]] = {}
    for name, entry in data["presets"].items():
        where = f"expression preset file {path}, preset {name!r}"
        if not _PRESET_NAME.match(name) or _is_facs_code(name):
            raise InputError(f"{where}: preset names must be words like 'happy' (not FACS codes)")
        if not isinstance(entry, dict) or not isinstance(entry.get("weights"), dict):
            raise InputError(f"{where}: expected an object with a 'weights' object")
        weights: dict[str, float] = {}
        for shape, value in entry["weights"].items():
            if shape not in ARKIT_NAMES:
                raise InputError(f"{where}: unknown ARKit shape {shape!r}; valid: {', '.join(ARKIT_NAMES)}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise InputError(f"{where}: weight of {shape} must be a number in [0, 1], got {value!r}")
            weights[shape] = float(value)
        out[name] = weights
    return out


# ------------------------------------------------------------------ spec
@dataclasses.dataclass(frozen=True)
class ExpressionSpec:
    """One target expression.

    Attributes:
        weights: target ARKit weights (name -> value in [0, 1]); unnamed shapes are 0.
        mode: ``"replace"``: the target is exactly ``weights``; ``"add"``: the target is the source
            expression plus ``weights``.
        intensity: how far to move from the source toward the target, in [0, 1].
        label: a file-name-safe name (``happy``, ``AU12-0.8_AU6-0.5``).
    """

    weights: dict[str, float]
    mode: str = "replace"
    intensity: float = 1.0
    label: str = "expression"

    def __post_init__(self):
        object.__setattr__(self, "weights", {str(k): float(v) for k, v in dict(self.weights).items()})
        for name, value in self.weights.items():
            _check_unit(value, f"weight of {name}")
        _check_mode(self.mode)
        object.__setattr__(self, "intensity", _check_unit(self.intensity, "intensity"))
        object.__setattr__(self, "label", sanitize_label(self.label))

    def with_intensity(self, intensity: float) -> ExpressionSpec:
        """A copy with another intensity (for sweeps)."""
        return dataclasses.replace(self, intensity=intensity)

    def target(self, names: Sequence[str]) -> np.ndarray:
        """The weights as a (K_exp,) float64 vector in the order of ``names``."""
        return weights_to_vector(self.weights, names)

    def apply(self, source: Any, names: Sequence[str]) -> Any:
        """Edited expression weights ``clamp(source + intensity * (target - source), 0, 1)``.

        ``target`` is ``weights`` (replace mode) or ``source + weights`` (add mode). The result is
        always clamped, so a source outside [0, 1] comes back clamped even at intensity 0.

        Args:
            source: fitted weights, (K_exp,) or (B, K_exp), a numpy array or a torch tensor.
            names: the K_exp ARKit names in model order (``model.expression_names``).

        Returns:
            Same type and shape as ``source`` (a float array; torch keeps dtype and device).
        """
        names = tuple(names)
        torch = sys.modules.get("torch")
        is_torch = torch is not None and isinstance(source, torch.Tensor)
        if not is_torch:
            source = np.asarray(source)
            if not np.issubdtype(source.dtype, np.floating):
                source = source.astype(np.float64)
        if source.ndim not in (1, 2) or source.shape[-1] != len(names):
            raise InputError(
                f"expression weights must have shape (K,) or (B, K) with K={len(names)}, "
                f"got {tuple(source.shape)}"
            )
        w = self.target(names)
        if is_torch:
            w = torch.as_tensor(w, dtype=source.dtype, device=source.device)
        else:
            w = w.astype(source.dtype)
        target = w if self.mode == "replace" else source + w
        edited = source + self.intensity * (target - source)
        return edited.clamp(0.0, 1.0) if is_torch else np.clip(edited, 0.0, 1.0)


def weights_to_vector(weights: Mapping[str, float], names: Sequence[str]) -> np.ndarray:
    """ARKit name -> weight mapping as a (K,) float64 vector ordered like ``names`` (others 0)."""
    names = tuple(names)
    index = {n: i for i, n in enumerate(names)}
    out = np.zeros(len(names), dtype=np.float64)
    for name, value in weights.items():
        if name not in index:
            raise InputError(f"unknown ARKit expression shape {name!r}; valid: {', '.join(names)}")
        out[index[name]] = float(value)
    return out


def sanitize_label(text: str) -> str:
    """Make ``text`` safe as a file-name part: ``[A-Za-z0-9._+-]`` only, at most 80 characters."""
    label = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(text)).strip("._") or "expression"
    if len(label) > 80:
        label = f"{label[:71]}_{hashlib.sha1(label.encode()).hexdigest()[:8]}"
    return label


# ------------------------------------------------------------------ AUs
def facs_weights(code: str, names: Sequence[str] = ARKIT_NAMES) -> dict[str, float]:
    """ARKit weights of a FACS code such as ``6+12``, ``1+2+5B+26`` or ``R12A+R14A``.

    Each ``+`` item is ``[AU][L|R]<number>[A-E]``: an optional side (the subject's left/right), the AU
    number and an optional intensity letter (``FACS_INTENSITY``; :data:`DEFAULT_AU_INTENSITY` when
    absent). Shapes driven by several AUs take the largest value.
    """
    out: dict[str, float] = {}
    items = [item.strip() for item in code.split("+")]
    for item in items:
        m = _FACS_ITEM.match(item)
        if not m:
            raise InputError(
                f"malformed FACS code {code!r} at {item!r}: expected items like 12, R12A or 5B "
                f"joined by '+'; {_valid_aus()}"
            )
        side, number, letter = m.groups()
        value = FACS_INTENSITY[letter.upper()] if letter else DEFAULT_AU_INTENSITY
        _add_au(out, int(number), side, value, names)
    return {n: out[n] for n in names if n in out}


def au_shapes(au: int, side: str | None = None) -> tuple[str, ...]:
    """ARKit shapes of Action Unit ``au``, restricted to one side (``"L"``/``"R"``) if given."""
    if au not in ACTION_UNITS:
        raise InputError(f"unknown Action Unit AU{au}; {_valid_aus()}")
    shapes = ACTION_UNITS[au]
    if side:
        shapes = tuple(s for s in shapes if s.endswith("_" + side.upper()))
        if not shapes:
            raise InputError(
                f"AU{au} ({AU_NAMES[au]}) drives {', '.join(ACTION_UNITS[au])}, "
                f"which has no {side.upper()} side; {_valid_aus()}"
            )
    return shapes


def _add_au(out: dict[str, float], au: int, side: str | None, value: float, names: Sequence[str]) -> None:
    gain = AU_GAIN.get(au, 1.0)
    for shape in au_shapes(au, side):
        if shape not in names:
            raise InputError(
                f"AU{au} needs shape {shape!r}, which the model lacks; valid: {', '.join(names)}"
            )
        out[shape] = max(out.get(shape, 0.0), value * gain)


def _valid_aus() -> str:
    return "valid AUs: " + ", ".join(f"AU{n} {AU_NAMES[n]}" for n in ACTION_UNITS)


# ------------------------------------------------------------------ parsing
def parse_expressions(
    spec: str,
    names: Sequence[str],
    intensity: float = 1.0,
    mode: str = "replace",
    presets: Mapping[str, Mapping[str, float]] | None = None,
) -> list[ExpressionSpec]:
    """Parse a list of target expressions, e.g. the CLI's ``--expression`` value.

    Splitting rule: ``;`` separates groups. Within a group, ``,`` separates items; every bare item
    (a preset name such as ``happy`` or a FACS code such as ``6+12``) is a target of its own, and all
    ``NAME=VALUE`` items of the group together form ONE target, placed where its first item stands.
    So ``happy,sad,surprise`` gives three targets, ``AU12=0.8,AU6=0.5`` gives one, and
    ``AU12=0.8;jawOpen=0.5`` gives two.

    Args:
        spec: the text.
        names: ARKit names of the model's expression shapes, in model order.
        intensity: interpolation amount in [0, 1] given to every target.
        mode: ``"replace"`` or ``"add"``.
        presets: ``{name: weights}``; default :func:`load_presets` (read only when a preset is named).

    Raises:
        InputError: empty or malformed text, unknown preset/AU/ARKit name, value out of range.
    """
    names = tuple(names)
    _check_mode(mode)
    intensity = _check_unit(intensity, "intensity")
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"empty expression spec; {_syntax_hint(presets)}")
    out: list[ExpressionSpec] = []
    for group in spec.split(";"):
        items = [item.strip() for item in group.split(",")]
        if not all(items):
            raise InputError(f"empty item in expression spec {spec!r}; {_syntax_hint(presets)}")
        weighted = [item for item in items if "=" in item]
        first_weighted = next((i for i, item in enumerate(items) if "=" in item), None)
        for i, item in enumerate(items):
            if "=" not in item:
                out.append(_bare_spec(item, names, intensity, mode, presets))
            elif i == first_weighted:
                out.append(_weighted_spec(weighted, names, intensity, mode))
    return out


def parse_expression(
    spec: str,
    names: Sequence[str],
    intensity: float = 1.0,
    mode: str = "replace",
    presets: Mapping[str, Mapping[str, float]] | None = None,
) -> ExpressionSpec:
    """Parse ONE target expression: a preset, a FACS code or ``NAME=VALUE`` items (see module doc).

    Arguments as for :func:`parse_expressions`; text that holds several targets is an error.
    """
    specs = parse_expressions(spec, names, intensity, mode, presets)
    if len(specs) != 1:
        raise InputError(
            f"expression spec {spec!r} names {len(specs)} targets ({', '.join(s.label for s in specs)}), "
            "expected one; list several only where several targets are accepted"
        )
    return specs[0]


def _bare_spec(
    item: str, names: tuple[str, ...], intensity: float, mode: str, presets: Mapping | None
) -> ExpressionSpec:
    if _is_facs_code(item):
        label = "FACS_" + "+".join(part.strip().upper() for part in item.split("+"))
        return ExpressionSpec(facs_weights(item, names), mode, intensity, label)
    presets = load_presets() if presets is None else presets
    by_lower = {str(k).lower(): k for k in presets}
    key = by_lower.get(item.lower())
    if key is None:
        raise InputError(f"unknown expression preset {item!r}; {_syntax_hint(presets)}")
    weights = dict(presets[key])
    missing = [n for n in weights if n not in names]
    if missing:
        raise InputError(
            f"preset {key!r} uses shapes the model lacks ({', '.join(missing)}); valid: {', '.join(names)}"
        )
    return ExpressionSpec(weights, mode, intensity, str(key))


def _weighted_spec(items: list[str], names: tuple[str, ...], intensity: float, mode: str) -> ExpressionSpec:
    by_lower = {n.lower(): n for n in names}
    valid = f"valid ARKit names: {', '.join(names)}; {_valid_aus()}"
    au_part: dict[str, float] = {}
    arkit_part: dict[str, float] = {}
    seen: set[str] = set()
    labels: list[str] = []
    for item in items:
        parts = item.split("=")
        key, text = (parts[0].strip(), parts[1].strip()) if len(parts) == 2 else ("", "")
        if len(parts) != 2 or not key:
            raise InputError(f"malformed expression item {item!r}: expected NAME=VALUE; {valid}")
        if not text:
            raise InputError(f"missing value in {item!r}: expected a number in [0, 1] (AUs also take A-E)")
        au_match = _AU_KEY.match(key)
        if au_match:
            number = au_match.group(1) or au_match.group(4)
            side = (au_match.group(2) or au_match.group(3) or "").upper() or None
            canon = f"AU{int(number)}" + (f"_{side}" if side else "")
            if text.upper() in FACS_INTENSITY:
                value = FACS_INTENSITY[text.upper()]
                shown = text.upper()
            else:
                value = _parse_value(text, item, letters=True)
                shown = f"{value:g}"
            if canon in seen:
                raise InputError(f"{canon} given twice in the expression spec; give each name once")
            _add_au(au_part, int(number), side, value, names)
        else:
            canon = by_lower.get(key.lower())
            if canon is None:
                raise InputError(f"unknown expression name {key!r} in {item!r}; {valid}")
            value = _parse_value(text, item, letters=False)
            shown = f"{value:g}"
            if canon in seen:
                raise InputError(f"{canon} given twice in the expression spec; give each name once")
            arkit_part[canon] = value
        seen.add(canon)
        labels.append(f"{canon}-{shown}")
    weights = {**au_part, **arkit_part}
    weights = {n: weights[n] for n in names if n in weights}
    return ExpressionSpec(weights, mode, intensity, "_".join(labels))


def _parse_value(text: str, item: str, letters: bool) -> float:
    expected = "a number in [0, 1]" + (" or a FACS intensity letter A-E" if letters else "")
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"bad value in {item!r}: expected {expected}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InputError(f"value out of range in {item!r}: expected {expected}")
    return value


def _is_facs_code(text: str) -> bool:
    return all(_FACS_ITEM.match(part.strip()) for part in text.split("+"))


def _syntax_hint(presets: Mapping | None) -> str:
    if presets is None:
        try:
            presets = load_presets()
        except InputError as err:
            return f"presets unavailable ({err}); give AU or ARKit weights such as AU12=0.8,AU6=0.5"
    return (
        f"valid presets: {', '.join(sorted(presets))}; or a FACS code such as 6+12, "
        "or weights such as AU12=0.8,AU6=0.5 or mouthSmile_L=0.7,jawOpen=0.3"
    )


def _check_unit(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InputError(f"{what} must be a number in [0, 1], got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InputError(f"{what} must be in [0, 1], got {value:g}")
    return value


def _check_mode(mode: Any) -> None:
    if mode not in MODES:
        raise InputError(f"unknown expression mode {mode!r}; valid modes: {', '.join(MODES)}")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


__all__ = [
    "ACTION_UNITS", "ARKIT_NAMES", "AU_GAIN", "AU_NAMES", "DEFAULT_AU_INTENSITY", "FACS_INTENSITY", "MODES",
    "ExpressionSpec", "au_shapes", "default_presets_path", "facs_weights", "load_presets",
    "parse_expression", "parse_expressions", "sanitize_label", "weights_to_vector",
]  # fmt: skip
