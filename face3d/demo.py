"""The built-in example: scikit-image's public-domain ``astronaut`` photo, fitted and edited."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from face3d.io import atomic_write_json, write_image


def example_image() -> np.ndarray:
    """(512, 512, 3) uint8 RGB: Eileen Collins, NASA portrait (public domain), from scikit-image."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


DEMO_EXPRESSIONS = "neutral,happy,surprise,sad,open_mouth"


def run_demo(out_dir: str | os.PathLike, model, model_dir=None) -> Iterator[str]:
    """Fit the example face, write the overlay, mesh and record; then edit it to several
    expressions and write the grid. Yields one line per written result."""
    from face3d.fit import fit_image
    from face3d.fit.outputs import face_record, overlay_image, texture_layout, write_face

    out = Path(out_dir)
    image = example_image()
    write_image(out / "astronaut.png", image)
    t0 = time.perf_counter()
    faces = fit_image(image, model)
    if not faces:
        raise RuntimeError("no face found in the example image")
    face = faces[0]
    ms = 1e3 * (time.perf_counter() - t0)
    yaw = float(face.fit.yaw_pitch_roll[0, 0])
    yield f"fitted 1 face in {ms:.0f} ms: yaw {yaw:.1f}, residual {float(face.fit.error_px[0]):.2f} px"
    write_image(out / "astronaut_0_overlay.png", overlay_image(image, [face], model))
    yield f"wrote {out / 'astronaut_0_overlay.png'} (shaded model over the photo, landmarks)"
    write_face(out, "astronaut", image, face, model, texture_layout(model), "astronaut.png")
    yield f"wrote {out / 'astronaut_0.obj'} (+ texture) and {out / 'astronaut_0.json'}"
    atomic_write_json(out / "demo.json", {"faces": [face_record(face, model, "astronaut.png")]})

    from editing.api import EditContext, edit_fitted, grid_image
    from editing.edit3d import Editor3D
    from editing.expressions import parse_expressions
    from face3d.model import MorphableModel

    t0 = time.perf_counter()
    ctx = EditContext(model, Editor3D(MorphableModel.from_dir(model_dir, subset="full")))
    specs = parse_expressions(DEMO_EXPRESSIONS, model.expression_names)
    result = edit_fitted(image, faces, specs, ctx)
    for label, edited in result.outputs.items():
        write_image(out / f"astronaut_{label}.png", edited)
    write_image(out / "astronaut_grid.png", grid_image(image, result))
    ms = 1e3 * (time.perf_counter() - t0)
    grid = out / "astronaut_grid.png"
    yield f"edited to {DEMO_EXPRESSIONS} in {ms:.0f} ms; wrote {grid} (input | re-render | output)"
