"""edit_image / edit_folder: the Python API behind ``face3d edit``."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from editing.defgan2d import DefGAN2D
from editing.edit3d import EditConfig, Editor3D
from editing.expressions import ARKIT_NAMES, ExpressionSpec
from editing.gan.checkpoint import auto_refines, shipped_generators
from editing.gan.refine import refine_image_edit
from editing.result import ImageEdit
from editing.warp2d import Warp2D, dlib_landmarks, landmark_faces
from face3d.batch import (
    BatchItem,
    BatchJob,
    BatchSummary,
    ItemOutcome,
    collect_items,
    prepare_out_dir,
    run_batch,
    write_summary,
)
from face3d.detect import FaceDetector
from face3d.errors import InputError
from face3d.fit import FitConfig, fit_image
from face3d.fit.pipeline import default_regressor, detect_and_landmark, fit_detections
from face3d.ict import load_ict_arrays
from face3d.io import atomic_write_json, atomic_write_text, read_image, write_image
from face3d.model import MorphableModel


@dataclass(frozen=True)
class EditOptions:
    """Options of :func:`edit_folder` (the ``face3d edit`` flags).

    Attributes:
        face: ``"all"`` or the index of the one face to edit (largest first).
        grid: also write ``<stem>_grid.png`` (rows: targets; columns: input | edited head | output).
        resume: skip images whose outputs are already written (by a local run or a Ray run).
        workers: threads decoding and detecting ahead; with ``ray``, Ray actors.
        progress: show a progress bar.
        ray: None runs in this process; ``"local"`` starts a Ray runtime on this machine,
            ``"auto"`` or ``"ray://host:port"`` joins a cluster (``face3d edit --ray [ADDRESS]``).
        threads: with ``ray``, torch threads per actor (default 1).
    """

    face: str | int = "all"
    grid: bool = False
    resume: bool = False
    workers: int = 1
    progress: bool = True
    ray: str | None = None
    threads: int | None = None


@dataclass
class EditContext:
    """Models and settings reused across images (build once: loading and layout take seconds).

    Attributes:
        fit_model: the face + head :class:`MorphableModel` the fit uses (None for ``2d-warp``).
        editor: the :class:`Editor3D` (full head, UV layout; None for ``2d-warp``).
        fit_config: :class:`FitConfig`.
        detector, regressor: face detector and landmark regressor (None: built on demand / unused).
        method: ``"3d"`` (the 3D-guided warp), or a 2D-only baseline (no 3D model, no fit):
            ``"2d"`` (DefGAN, :mod:`editing.defgan2d`) or ``"2d-warp"`` (the landmark-driven warp,
            :mod:`editing.warp2d`).
        refiner: texture generator bundle that cleans up 3D re-renders (``--refine gan``), or None.
        baseline: the 2D baseline's editor: :class:`DefGAN2D` (``method == "2d"``) or
            :class:`Warp2D` (``method == "2d-warp"``).
    """

    fit_model: object | None
    editor: Editor3D | None
    fit_config: FitConfig = field(default_factory=FitConfig)
    detector: object | None = None
    regressor: object | None = None
    method: str = "3d"
    refiner: object | None = None
    baseline: object | None = None

    @classmethod
    def from_dir(
        cls,
        model_dir=None,
        config: EditConfig = EditConfig(),
        fit_config: FitConfig = FitConfig(),
        device=None,
        regressor="auto",
        refine: str = "auto",
        method: str = "3d",
    ):
        """Load the models.

        Args:
            refine: ``"auto"`` (the shipped texture generator when it beat the hand-made fill on the
                held-out mouth cycle: :func:`editing.gan.checkpoint.auto_refines`), ``"gan"``
                (required) or ``"none"``.
            method: ``"3d"``, ``"2d"`` (needs ``assets/defgan``) or ``"2d-warp"``; the 2D ones load
                no 3D model and no landmark regressor: dlib's detector and landmarks only.
        Raises:
            Face3DError: unknown refine/method, or required generator weights missing or corrupt.
        """
        refiner, baseline = load_generators_for(refine, method, device or "cpu")
        if method in TWO_D_METHODS:
            return cls(None, None, fit_config, FaceDetector(), None, method, None, baseline)
        arrays = load_ict_arrays(model_dir)  # read once for both models
        fit_model = MorphableModel.from_arrays(arrays).to(device or "cpu")
        render_model = MorphableModel.from_arrays(arrays, subset="full").to(device or "cpu")
        if regressor == "auto":
            regressor = default_regressor()
        editor = Editor3D(render_model, config)
        return cls(fit_model, editor, fit_config, FaceDetector(), regressor, method, refiner, baseline)


METHODS = ("3d", "2d", "2d-warp")
"""The ``face3d edit --method`` values."""

TWO_D_METHODS = ("2d", "2d-warp")
"""The 2D-only methods: no 3D model and no fit, dlib's landmarks only."""


def load_generators_for(refine: str, method: str, device="cpu"):
    """(texture refiner or None, 2D baseline or None) for the ``--refine`` / ``--method`` flags: the
    :class:`DefGAN2D` (the shipped generators) for ``2d``, the :class:`Warp2D` (no weights, its
    landmark model) for ``2d-warp``.

    Raises:
        InputError: unknown values. Face3DError: required weights or the landmark model missing or corrupt.
    """
    if refine not in ("auto", "gan", "none"):
        raise InputError(f"--refine must be auto, gan or none, got {refine!r}")
    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "2d-warp":
        return None, Warp2D()
    refiner = None
    if method == "3d" and refine != "none":
        refiner = shipped_generators("texture", required=refine == "gan")
        if refine == "auto" and not auto_refines(refiner):
            refiner = None
    baseline = DefGAN2D(shipped_generators("2d", required=True)) if method == "2d" else None
    return (None if refiner is None else refiner.to(device)), (
        None if baseline is None else baseline.to(device)
    )


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
    if not specs:
        raise InputError("no target expression given")
    if ctx.method in TWO_D_METHODS:  # 2D only: the detector and dlib's landmarks, no fit
        marked = detect_and_landmark(image, ctx.detector or FaceDetector(), None, box, None)
        return edit_fitted(image, landmark_faces(marked), specs, ctx, face)
    faces = fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector, box=box, regressor=ctx.regressor)
    return edit_fitted(image, faces, specs, ctx, face)


def edit_fitted(
    image: np.ndarray, faces: list, specs: list[ExpressionSpec], ctx: EditContext, face: str | int = "all"
) -> ImageEdit:
    """Edit already fitted faces (:class:`FaceFit` list; for ``2d-warp`` also
    :class:`editing.warp2d.FaceLandmarks`) of ``image`` to each target, with ``ctx.method`` (and
    ``ctx.refiner`` on the 3D path). ``2d-warp`` uses only each face's dlib landmarks."""
    if not faces:
        raise InputError("no face found")
    selected = _select(faces, face)
    labels = [s.label for s in specs]
    if ctx.method in TWO_D_METHODS:
        if ctx.baseline is None:
            raise InputError(f"method {ctx.method} needs its 2D editor (EditContext.baseline)")
        per_face = [(f, ctx.baseline.edit_face(image, dlib_landmarks(image, f), specs)) for f in selected]
    else:
        per_face = [(f, ctx.editor.edit_face(image, f, specs)) for f in selected]
    result = ImageEdit.from_faces(image, per_face, labels)
    if ctx.method == "3d" and ctx.refiner is not None:
        result = refine_image_edit(ctx.refiner, image, result)
    return result


def grid_image(image: np.ndarray, result: ImageEdit, size: int = 256) -> np.ndarray:
    """Rows per target: input | the edited head alone (``FaceEdit.render``) | output, cropped around
    the first edited face."""
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


POSE = ("yaw", "pitch", "roll")


def edit_record(result: ImageEdit, k: int, model, image_name: str) -> dict:
    """JSON record of target ``k``: source and target weights per face, fit summary (None for the
    2D-only ``2d-warp``, which fits nothing and takes the source as neutral), timings."""
    names = model.expression_names if model is not None else ARKIT_NAMES
    faces = []
    for f, edits in result.faces:
        e = edits[k]
        fit = getattr(f, "fit", None)
        pose = fit.yaw_pitch_roll[0] if fit is not None else [None] * 3
        faces.append(
            {
                "face_index": f.face_index,
                "bbox": [round(v, 2) for v in f.bbox],
                **{n: None if v is None else round(float(v), 3) for n, v in zip(POSE, pose, strict=True)},
                "fit_error_px": None if fit is None else round(float(fit.error_px[0]), 3),
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


@dataclass(frozen=True)
class EditJob:
    """What every image of one :func:`edit_folder` run shares; pickles (to Ray actors).

    Attributes:
        out_dir: the output folder (absolute).
        specs: the target :class:`ExpressionSpec` list.
        ctx: the :class:`EditContext` (its detector set).
        options: :class:`EditOptions`.
    """

    out_dir: Path
    specs: list
    ctx: EditContext
    options: EditOptions


class EditWorker:
    """Edits one image at a time for an :class:`EditJob`."""

    def __init__(self, job: EditJob):
        self.job = job

    def prepare(self, item: BatchItem):
        """Read the image, detect its faces and their landmarks."""
        ctx = self.job.ctx
        return detect_and_landmark(read_image(item.path), ctx.detector, None, None, ctx.regressor)

    def process(self, item: BatchItem, marked) -> ItemOutcome:
        """Fit, edit to every target, write the outputs and then the image's done marker."""
        out_dir, specs, ctx, options = self.job.out_dir, self.job.specs, self.job.ctx, self.job.options
        t0 = time.perf_counter()
        image = marked.image
        if ctx.method in TWO_D_METHODS:
            faces = landmark_faces(marked)
        else:
            faces = fit_detections(ctx.fit_model, marked, ctx.fit_config)
        result = edit_fitted(image, faces, specs, ctx, options.face)
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


def edit_done(job: EditJob, item: BatchItem) -> bool:
    """``--resume``: the image's done marker is there (written last, by a local run or a Ray run)."""
    return job.options.resume and _done_marker(job.out_dir, item.stem).is_file()


def edit_folder(
    inputs: list[str],
    out_dir: str | os.PathLike,
    specs: list[ExpressionSpec],
    ctx: EditContext,
    options: EditOptions = EditOptions(),
) -> BatchSummary:
    """Edit every image of ``inputs`` to each target; writes ``<stem>_<label>.png`` and ``.json``
    per target (and ``<stem>_grid.png`` with ``options.grid``), then ``summary.json``. With
    ``options.ray`` the images are edited by Ray actors (same outputs; ``out_dir`` on a path every
    node shares)."""
    out_dir = Path(out_dir).absolute()
    prepare_out_dir(out_dir)
    items, problems = collect_items(inputs)
    if ctx.detector is None:
        ctx.detector = FaceDetector()
    summary = run_batch(
        items,
        BatchJob(EditWorker, EditJob(out_dir, list(specs), ctx, options), edit_done),
        workers=options.workers,
        desc="edit",
        problems=problems,
        progress=options.progress,
        ray=options.ray,
        threads=options.threads,
    )
    write_summary(out_dir, summary, "edits", images=len(items), expressions=[s.label for s in specs])
    return summary
