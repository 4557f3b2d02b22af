"""fit_folder: ``face3d fit`` as a Python call (files and folders in, per-face outputs out).

The per-image work is a :class:`FitJob` (picklable: options, output folder, model, detector,
regressor) and :class:`FitWorker`, built from it once per process; the local runner and each Ray
actor (``options.ray``) use both, so their outputs are the same by construction
(:mod:`face3d.batch`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

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
from face3d.fit.config import FitConfig
from face3d.fit.outputs import face_record, overlay_image, texture_layout, write_face
from face3d.fit.photometric import PhotometricConfig, refine_face
from face3d.fit.pipeline import LandmarkConfig, default_regressor, detect_and_landmark, fit_detections
from face3d.fit.residual import ResidualConfig, residual_face
from face3d.fit.residual_io import save_residual
from face3d.io import atomic_write_json, atomic_write_text, read_image, write_image


@dataclass(frozen=True)
class FolderOptions:
    """Options of :func:`fit_folder` (the ``face3d fit`` flags).

    Attributes:
        max_faces: fit at most this many faces per image (largest first); None for all.
        bbox_file: protocol mode: JSON ``{"<image file name>": [x0, y0, x1, y1]}`` giving the box
            of the 68 ground-truth points; detection is skipped for the images it names.
        resume: skip images whose outputs are already written (by a local run or a Ray run).
        workers: threads decoding and detecting ahead of the fitter; with ``ray``, Ray actors.
        ray: None runs in this process; ``"local"`` starts a Ray runtime on this machine,
            ``"auto"`` or ``"ray://host:port"`` joins a cluster (``face3d fit --ray [ADDRESS]``).
        threads: with ``ray``, torch threads per actor (default 1).
        write_mesh: write the textured OBJ of each face.
        write_ply: also write a PLY with per-vertex colours sampled from the photo.
        write_overlay: write the overlay PNG of each face.
        progress: show a progress bar.
        landmarks: landmark source per face (dlib / regression network) and the ``fast`` path.
        residual: ``"conv"`` or ``"free"`` to fit a residual displacement after the landmark fit
            (:func:`face3d.fit.residual.fit_residual`), None for the linear model only.
        photometric: refine pose, expression and identity on the photo after the landmark fit
            (:func:`face3d.fit.photometric.refine_photometric`; before any residual).
    """

    max_faces: int | None = None
    bbox_file: str | None = None
    resume: bool = False
    workers: int = 1
    ray: str | None = None
    threads: int | None = None
    write_mesh: bool = True
    write_ply: bool = False
    write_overlay: bool = True
    progress: bool = True
    landmarks: LandmarkConfig = field(default_factory=LandmarkConfig)
    residual: str | None = None
    photometric: bool = False


def load_boxes(path: str | os.PathLike) -> dict[str, list[float]]:
    """Read a ``--bbox-file`` (file name -> [x0, y0, x1, y1])."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"--bbox-file {path}: no such file") from None
    except (OSError, ValueError) as err:
        raise InputError(f"--bbox-file {path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and len(v) == 4 and all(isinstance(x, int | float) for x in v)
        for v in data.values()
    ):
        raise InputError(f'--bbox-file {path}: expected {{"image.jpg": [x0, y0, x1, y1], ...}}')
    return data


def _with_residual(model, image, face, parametrisation: str, out_dir: Path, stem: str, fit_config: FitConfig):
    """Fit the residual of one face, save its maps, return the face with the residual applied
    (its mesh, landmarks and overlay are then the final mesh's)."""
    config = ResidualConfig(parametrisation=parametrisation)
    face, res = residual_face(model, image, face, config, fit_config)
    save_residual(out_dir, f"{stem}_{face.face_index}", model, res, mesh=False)
    return face


def _done_marker(out_dir: Path, stem: str) -> Path:
    return out_dir / f".{stem}.done"


@dataclass(frozen=True)
class FitJob:
    """What every image of one :func:`fit_folder` run shares; pickles (to Ray actors).

    Attributes:
        out_dir: the output folder (absolute).
        model: the :class:`MorphableModel` fitted.
        config: :class:`FitConfig`.
        options: :class:`FolderOptions`.
        boxes: ``--bbox-file`` contents (file name -> landmark box), {} for detection.
        detector: the :class:`FaceDetector`.
        regressor: the regression network (:func:`default_regressor`), or None.
    """

    out_dir: Path
    model: object
    config: FitConfig
    options: FolderOptions
    boxes: dict
    detector: object
    regressor: object | None


class FitWorker:
    """Fits one image at a time for a :class:`FitJob` (the texture layout built once)."""

    def __init__(self, job: FitJob):
        self.job = job
        self.layout = texture_layout(job.model) if job.options.write_mesh else None

    def prepare(self, item: BatchItem):
        """Read the image, detect its faces and their landmarks."""
        job = self.job
        image = read_image(item.path)
        box = job.boxes.get(item.path.name)
        return detect_and_landmark(
            image, job.detector, job.options.max_faces, box, job.regressor, job.options.landmarks
        )

    def process(self, item: BatchItem, marked) -> ItemOutcome:
        """Fit the detected faces and write their outputs, then the image's done marker."""
        job, options, model, out_dir = self.job, self.job.options, self.job.model, self.job.out_dir
        faces = fit_detections(model, marked, job.config, fast=options.landmarks.fast)
        if not faces:
            raise InputError("no face found")
        timings: dict[str, list[float]] = {}
        if options.photometric:
            faces = [refine_face(model, marked.image, f, PhotometricConfig(), job.config) for f in faces]
        if options.residual:
            faces = [
                _with_residual(model, marked.image, f, options.residual, out_dir, item.stem, job.config)
                for f in faces
            ]
        for face in faces:
            if options.write_overlay:
                ov = overlay_image(marked.image, [face], model)
                write_image(out_dir / f"{item.stem}_{face.face_index}_overlay.png", ov)
            if self.layout is not None:
                write_face(
                    out_dir,
                    item.stem,
                    marked.image,
                    face,
                    model,
                    self.layout,
                    item.path.name,
                    ply=options.write_ply,
                )
            else:
                atomic_write_json(
                    out_dir / f"{item.stem}_{face.face_index}.json", face_record(face, model, item.path.name)
                )
            for k, v in face.timings_ms.items():
                timings.setdefault(k, []).append(v)
        atomic_write_text(_done_marker(out_dir, item.stem), f"{len(faces)}\n")
        return ItemOutcome(outputs=len(faces), timings_ms=timings)


def fit_done(job: FitJob, item: BatchItem) -> bool:
    """``--resume``: the image's done marker is there (written last, by a local run or a Ray run)."""
    return job.options.resume and _done_marker(job.out_dir, item.stem).is_file()


def fit_folder(
    inputs: list[str],
    out_dir: str | os.PathLike,
    model,
    config: FitConfig = FitConfig(),
    options: FolderOptions = FolderOptions(),
    detector=None,
    regressor="auto",
) -> BatchSummary:
    """Fit every face of every image in ``inputs`` (files and/or folders, recursive).

    Writes per face ``<stem>_<i>.json``, ``<stem>_<i>.obj`` (+ texture) and
    ``<stem>_<i>_overlay.png``; then ``summary.json``. A per-image marker, written after all
    faces of an image, records finished images so that ``resume`` skips exactly those. With
    ``options.ray`` the images are fitted by Ray actors (same outputs); ``out_dir`` must then be
    on a path every node of the cluster shares.
    """
    out_dir = Path(out_dir).absolute()
    prepare_out_dir(out_dir)
    items, problems = collect_items(inputs)
    boxes = load_boxes(options.bbox_file) if options.bbox_file else {}
    if regressor == "auto":
        regressor = default_regressor()
    if options.landmarks.fast and regressor is None:
        raise InputError("--fast needs the regression network (assets/regressor) and it is not installed")
    job = FitJob(out_dir, model, config, options, boxes, detector or FaceDetector(), regressor)
    summary = run_batch(
        items,
        BatchJob(FitWorker, job, fit_done),
        workers=options.workers,
        desc="fit",
        problems=problems,
        progress=options.progress,
        ray=options.ray,
        threads=options.threads,
    )
    write_summary(out_dir, summary, "faces", images=len(items))
    return summary
