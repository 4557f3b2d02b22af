"""The editing methods ``face3d compare`` runs: their names, their weights and their outputs.

``3d`` (the 3D re-render, :mod:`editing.api`), ``3d-gan`` (the re-render cleaned by the texture
generator), ``2d`` (the 2D-only DefGAN baseline) and ``2d-warp`` (the 2D-only landmark-driven warp,
:mod:`editing.warp2d`). The learned methods load their shipped weights (``assets/gan3d``,
``assets/defgan``) and ``2d-warp`` its landmark model before any work; missing or corrupt files
raise :class:`Face3DError` naming the file.
"""

from __future__ import annotations

import numpy as np

from editing.defgan2d import DefGAN2D
from editing.gan.checkpoint import shipped_generators
from editing.gan.refine import refine_image_edit
from editing.result import ImageEdit
from editing.warp2d import Warp2D, dlib_landmarks
from face3d.errors import InputError

METHODS: tuple[str, ...] = ("3d", "2d", "3d-gan", "2d-warp")
GENERATOR_KINDS: dict[str, str] = {"2d": "2d", "3d-gan": "texture"}
"""The generator bundle kind each learned method needs (shipped under ``assets/defgan``, ``assets/gan3d``)."""


def parse_methods(text: str) -> list[str]:
    """``"3d,2d"`` -> ``["3d", "2d"]`` (order kept, duplicates dropped).

    Raises:
        InputError: empty or unknown method names.
    """
    methods = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        raise InputError(f"--methods: expected a comma list of {', '.join(METHODS)}, got {text!r}")
    return methods


def check_methods(methods: list[str]) -> dict[str, object]:
    """Fail fast, before any model loads, when a method is unknown or lacks its files; returns
    method -> its loaded :class:`editing.gan.checkpoint.GeneratorBundle` (``3d-gan``),
    :class:`editing.defgan2d.DefGAN2D` (``2d``) or :class:`editing.warp2d.Warp2D` (``2d-warp``).

    Raises:
        Face3DError: unknown method, or missing / corrupt weights (the message names the file).
    """
    bundles: dict[str, object] = {}
    for m in methods:
        if m not in METHODS:
            raise InputError(f"unknown method {m!r}; expected one of {', '.join(METHODS)}")
        if m == "2d-warp":
            bundles[m] = Warp2D()
        elif m == "2d":
            bundles[m] = DefGAN2D(shipped_generators(GENERATOR_KINDS[m], required=True))
        elif m != "3d":
            bundles[m] = shipped_generators(GENERATOR_KINDS[m], required=True)
    return bundles


def method_outputs(
    method: str, bundle, image: np.ndarray, base: ImageEdit, specs: list | None = None
) -> dict[str, np.ndarray]:
    """One method's outputs ``{label: (H, W, 3) uint8}`` from the plain 3D edit ``base``
    (:class:`editing.result.ImageEdit`): ``3d`` is ``base`` itself, ``3d-gan`` cleans each re-render
    with the texture generator. The 2D-only ``2d`` and ``2d-warp`` use none of the fit: dlib's
    landmarks of each face, the target ``specs`` (:class:`editing.expressions.ExpressionSpec`, in
    ``base.labels`` order) and their own face region."""
    if method == "3d":
        return base.outputs
    if method == "3d-gan":
        return refine_image_edit(bundle, image, base).outputs
    if specs is None or [s.label for s in specs] != base.labels:
        raise ValueError(f"{method} needs the target specs, in the order of base.labels")
    faces = [(f, bundle.edit_face(image, dlib_landmarks(image, f), specs)) for f, _ in base.faces]
    return ImageEdit.from_faces(image, faces, base.labels).outputs
