"""edit_image / edit_folder: the Python API behind ``face3d edit``."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from editing.edit3d import EditConfig, Editor3D, FaceEdit
from editing.expressions import ExpressionSpec
from face3d.batch import BatchItem, BatchSummary, ItemOutcome, make_items, run_batch, write_summary
from face3d.errors import InputError
from face3d.fit import FitConfig
from face3d.io import atomic_write_json, read_image, write_image


@dataclass(frozen=True)
class ImageEdit:
    """All edits of one image.

    Attributes:
        outputs: target label -> (H, W, 3) uint8 edited image (every selected face edited).
        faces: per face, the :class:`FaceFit` and its edits (one per target, in order).
        labels: the target labels in order.
    """

    outputs: dict[str, np.ndarray]
    faces: list[tuple[object, list[FaceEdit]]]
    labels: list[str]


@dataclass(frozen=True)
class EditOptions:
    """Options of :func:`edit_folder` (the ``face3d edit`` flags).

    Attributes:
        face: ``"all"`` or the index of the one face to edit (largest first).
        grid: also write ``<stem>_grid.png`` (rows: targets; columns: input | re-render | output).
        resume: skip images whose outputs are already written.
        workers: threads decoding and detecting ahead.
        progress: show a progress bar.
    """

    face: str | int = "all"
    grid: bool = False
    resume: bool = False
    workers: int = 1
    progress: bool = True


@dataclass
class EditContext:
    """Models and settings reused across images (build once: loading and layout take seconds)."""

    fit_model: object
    editor: Editor3D
    fit_config: FitConfig = field(default_factory=FitConfig)
    detector: object | None = None
    regressor: object | None = None

    @classmethod
    def from_dir(
        cls,
        model_dir=None,
        config: EditConfig = EditConfig(),
        fit_config: FitConfig = FitConfig(),
        device=None,
        regressor="auto",
    ):
        from face3d.detect import FaceDetector
        from face3d.model import MorphableModel

        fit_model = MorphableModel.from_dir(model_dir).to(device or "cpu")
        render_model = MorphableModel.from_dir(model_dir, subset="full").to(device or "cpu")
        if regressor == "auto":
            from face3d.fit.pipeline import default_regressor

            regressor = default_regressor()
        return cls(fit_model, Editor3D(render_model, config), fit_config, FaceDetector(), regressor)


def _select(faces: list, face: str | int) -> list:
    if face == "all":
        return faces
    idx = int(face)
    if idx >= len(faces):
        raise InputError(f"face {idx} requested but only {len(faces)} face(s) found")
    return [faces[idx]]


def edit_image(
    image: np.ndarray, specs: list[ExpressionSpec], ctx: EditContext, face: str | int = "all", box=None
) -> ImageEdit:
    """Fit every face of ``image`` ((H, W, 3) uint8) and edit it to each target expression.

    Raises:
        InputError: no face found, or the requested face index does not exist.
    """
    from face3d.fit import fit_image

    if not specs:
        raise InputError("no target expression given")
    faces = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector, box=box, regressor=ctx.regressor)
    return edit_fitted(image, faces, specs, ctx, face)


def edit_fitted(
    image: np.ndarray, faces: list, specs: list[ExpressionSpec], ctx: EditContext, face: str | int = "all"
) -> ImageEdit:
    """Edit already fitted faces (:class:`FaceFit` list) of ``image`` to each target."""
    if not faces:
        raise InputError("no face found")
    per_face = [(f, ctx.editor.edit_face(image, f, specs)) for f in _select(faces, face)]
    outputs = {}
    for k, spec in enumerate(specs):
        out = image.copy()
        for _, edits in per_face:
            out[edits[k].region] = edits[k].image[edits[k].region]
        outputs[spec.label] = out
    return ImageEdit(outputs, per_face, [s.label for s in specs])


def grid_image(image: np.ndarray, result: ImageEdit, size: int = 256) -> np.ndarray:
    """Rows per target: input | re-render | output, cropped around the first edited face."""
    import cv2

    f, edits = result.faces[0]
    x0, y0, x1, y1 = edits[0].crop
    rows = []
    for e in edits:
        tiles = [image[y0:y1, x0:x1], e.render, e.image[y0:y1, x0:x1]]
        scale = size / max(y1 - y0, 1)
        w = max(1, round((x1 - x0) * scale))
        rows.append(
            np.concatenate([cv2.resize(t, (w, size), interpolation=cv2.INTER_AREA) for t in tiles], 1)
        )
    return np.concatenate(rows, 0)


def edit_record(result: ImageEdit, k: int, model, image_name: str) -> dict:
    """JSON record of target ``k``: source and target weights per face, fit summary, timings."""
    names = model.expression_names
    faces = []
    for f, edits in result.faces:
        e = edits[k]
        faces.append(
            {
                "face_index": f.face_index,
                "bbox": [round(v, 2) for v in f.bbox],
                "yaw": round(float(f.fit.yaw_pitch_roll[0, 0]), 3),
                "pitch": round(float(f.fit.yaw_pitch_roll[0, 1]), 3),
                "roll": round(float(f.fit.yaw_pitch_roll[0, 2]), 3),
                "fit_error_px": round(float(f.fit.error_px[0]), 3),
                "source_expression": {n: round(float(v), 5) for n, v in zip(names, e.source, strict=True)},
                "target_expression": {n: round(float(v), 5) for n, v in zip(names, e.target, strict=True)},
                "crop": list(e.crop),
                "timings_ms": {
                    **{k2: round(v, 2) for k2, v in f.timings_ms.items()},
                    **{k2: round(v, 2) for k2, v in e.timings_ms.items()},
                },
            }
        )
    return {"image": image_name, "expression": result.labels[k], "faces": faces}


def _done_marker(out_dir: Path, stem: str) -> Path:
    return out_dir / f".{stem}.edit.done"


def edit_folder(
    inputs: list[str],
    out_dir: str | os.PathLike,
    specs: list[ExpressionSpec],
    ctx: EditContext,
    options: EditOptions = EditOptions(),
) -> BatchSummary:
    """Edit every image of ``inputs`` to each target; writes ``<stem>_<label>.png`` and ``.json``
    per target (and ``<stem>_grid.png`` with ``options.grid``), then ``summary.json``."""
    from face3d.fit.pipeline import detect_and_landmark, fit_detections
    from face3d.io import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items, problems = make_items(inputs)
    if not items and not problems:
        raise InputError("no images found in the inputs (jpg, jpeg, png, bmp, webp)")
    detector = ctx.detector
    if detector is None:
        from face3d.detect import FaceDetector

        detector = ctx.detector = FaceDetector()

    def prepare(item: BatchItem):
        image = read_image(item.path)
        return detect_and_landmark(image, detector, None, None, ctx.regressor)

    def process(item: BatchItem, marked) -> ItemOutcome:
        t0 = time.perf_counter()
        image = marked.image
        result = edit_fitted(
            image, fit_detections(ctx.fit_model, marked, ctx.fit_config), specs, ctx, options.face
        )
        for k, label in enumerate(result.labels):
            write_image(out_dir / f"{item.stem}_{label}.png", result.outputs[label])
            atomic_write_json(
                out_dir / f"{item.stem}_{label}.json", edit_record(result, k, ctx.fit_model, item.path.name)
            )
        if options.grid:
            write_image(out_dir / f"{item.stem}_grid.png", grid_image(image, result))
        atomic_write_text(_done_marker(out_dir, item.stem), "done\n")
        timings: dict[str, list[float]] = {"edit_total": [(time.perf_counter() - t0) * 1e3]}
        for f, edits in result.faces:
            for k2, v in f.timings_ms.items():
                timings.setdefault(k2, []).append(v)
            for e in edits:
                for k2, v in e.timings_ms.items():
                    timings.setdefault(k2, []).append(v)
        return ItemOutcome(outputs=len(specs) * len(result.faces), timings_ms=timings)

    def is_done(item: BatchItem) -> bool:
        return options.resume and _done_marker(out_dir, item.stem).is_file()

    summary = run_batch(items, process, prepare, is_done, options.workers, "edit", problems, options.progress)
    write_summary(out_dir, summary, "edits", images=len(items), expressions=[s.label for s in specs])
    return summary
