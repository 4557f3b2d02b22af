"""``compare_folder``: edit the same inputs to the same targets with several methods and measure them.

The engine behind a ``face3d compare INPUT... --expressions happy,sad --methods 3d,2d,3d-gan --out DIR``
command, built on :func:`face3d.batch.run_batch` (progress bar, ``--resume``, failures recorded and
skipped). Per input (one face: ``options.face``, the largest by default):

1. detect, 68 landmarks and the 3DMM fit (shared by every method: it gives the |yaw| used for
   grouping and the face region);
2. the 3D edit to every target; the union of its dilated face regions over the targets is THE face
   mask of that input, outside which every method's preservation is measured;
3. each method's output per target -> ``DIR/<method>/<stem>_<label>.png``, and its metrics
   (identity, preservation, FER expression, and the 3DMM re-fitted on the output inside the
   input's landmark box against the target weights, which favours the 3D methods;
   :mod:`editing.compare.metrics`; speckles and, with ``options.fer_faces``, completeness toward
   the FER2013 class median read by dlib's landmarks, :mod:`editing.compare.quality`) ->
   ``DIR/records/<stem>.json``; a face-crop grid (rows: targets, columns: input | methods) ->
   ``DIR/grids/<stem>.png``; features for KID (input's and outputs') -> ``DIR/records/<stem>.npz``.

Then, over all records (resumed ones included): ``DIR/metrics.csv``, KID per method (over all rows
and per |yaw| bin) on FER and dlib features against the real inputs (or ``options.real_dir``),
completeness pooled over faces (:mod:`editing.compare.setlevel`), ``DIR/report.html``,
``DIR/summary.json`` and ``DIR/summary.md`` (the tables in Markdown). Inputs are copied (as
decoded RGB) to ``DIR/inputs/<stem>.png`` so the report is self-contained.

Methods (:mod:`editing.compare.methods`): ``3d``, ``3d-gan``, ``2d`` and ``2d-warp``; their weights
load before any work, and missing or corrupt ones raise :class:`Face3DError` naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.io import loadmat

from editing.api import EditContext, edit_fitted
from editing.compare.fer import FerClassifier, fer_crop
from editing.compare.grids import face_grid
from editing.compare.methods import METHODS as METHODS  # re-exported: callers import them from here
from editing.compare.methods import check_methods, method_outputs
from editing.compare.methods import parse_methods as parse_methods
from editing.compare.metrics import (
    expression_metrics,
    identity_metrics,
    preservation_metrics,
    refit_metrics,
)
from editing.compare.quality import (
    CLASS_MEASURES,
    completeness,
    landmark_references,
    load_fer_faces,
    read_measures,
    speckles,
)
from editing.compare.report import (
    comparison_notes,
    summary_markdown,
    summary_table,
    write_metrics_csv,
    write_report,
)
from editing.compare.setlevel import real_features, set_level
from editing.result import ImageEdit
from face3d.batch import (
    BatchItem,
    BatchJob,
    BatchSummary,
    ItemOutcome,
    collect_items,
    make_items,
    run_batch,
    write_summary,
)
from face3d.detect import FaceDetector, landmark_box
from face3d.detect.dlib_detector import face_descriptor
from face3d.errors import InputError
from face3d.fit.pipeline import detect_and_landmark, fit_detections
from face3d.io import (
    atomic_write_json,
    atomic_write_npz,
    atomic_write_text,
    list_images,
    read_image,
    write_image,
)

FER_TARGETS: dict[str, str] = {
    "happy": "happy",
    "smile": "happy",
    "sad": "sad",
    "surprise": "surprise",
    "fear": "fear",
    "anger": "angry",
    "angry": "angry",
    "disgust": "disgust",
    "neutral": "neutral",
}
"""Target label -> FER2013 class, for the expression metrics (other targets get none)."""


@dataclass(frozen=True)
class CompareOptions:
    """Options of :func:`compare_folder`.

    Attributes:
        face: index of the face compared in each image (largest first).
        resume: skip inputs whose ``records/<stem>.json`` holds every method and every per-row
            metric (their records still count); where it holds only some methods, run just the
            missing ones (a method added later); where it holds every method but lacks a metric
            added later (``speckles``, ``completeness``), add it from the saved input and outputs
            without editing again.
        workers: threads decoding and detecting ahead; with ``ray``, Ray actors.
        progress: show a progress bar.
        ray: None runs in this process; ``"local"`` starts a Ray runtime on this machine,
            ``"auto"`` or ``"ray://host:port"`` joins a cluster (``face3d compare --ray``).
        threads: with ``ray``, torch threads per actor (default 1).
        fer_dir: FER classifier folder (default ``assets/fer``).
        real_dir: folder of real photos for the KID reference (default: the inputs themselves).
        max_real: at most this many reference photos (the first, sorted).
        seed: bootstrap and KID subset seed.
        yaw_truth: image file name -> ground-truth yaw (degrees) used for the |yaw| bins instead of
            the fitted yaw (both are recorded: ``yaw`` and ``yaw_fit``); see :func:`aflw_yaws`.
        fer_faces: the FER2013 npz (``x_test``, ``y_test``, ``classes``) whose class medians are
            the completeness references (:func:`editing.compare.quality.landmark_references`);
            None: no completeness.
        fer_n: FER2013 test faces per class read for those references.
    """

    face: int = 0
    resume: bool = False
    workers: int = 1
    progress: bool = True
    ray: str | None = None
    threads: int | None = None
    fer_dir: str | None = None
    real_dir: str | None = None
    max_real: int = 500
    seed: int = 0
    yaw_truth: dict[str, float] | None = None
    fer_faces: str | None = None
    fer_n: int = 100


def aflw_yaws(inputs: list[str]) -> dict[str, float]:
    """Ground-truth yaw (degrees) of every image among ``inputs`` (files/folders) that has an
    AFLW2000-3D ``.mat`` beside it (``Pose_Para``), by file name."""
    items, _ = make_items(inputs)
    out = {}
    for item in items:
        mat = item.path.with_suffix(".mat")
        if mat.is_file():
            pose = np.asarray(loadmat(mat)["Pose_Para"], dtype=np.float64).reshape(-1)
            out[item.path.name] = float(np.rad2deg(pose[1]))
    return out


def completeness_references(fer_faces: str | None, labels: list[str], n: int = 100) -> dict | None:
    """FER2013 class -> dlib measure -> median over its first ``n`` test faces
    (:func:`editing.compare.quality.landmark_references`), for the classes of :data:`CLASS_MEASURES`
    that ``labels`` name (:data:`FER_TARGETS`); None without ``fer_faces`` (the npz path)."""
    if fer_faces is None:
        return None
    classes = {FER_TARGETS.get(label.lower()) for label in labels} & set(CLASS_MEASURES)
    return landmark_references(load_fer_faces(fer_faces, sorted(classes), n))


def _refit(image: np.ndarray, box, ctx) -> np.ndarray | None:
    """(K,) expression weights of the 3DMM fitted on ``image`` inside the landmark box ``box``
    (the input's, as in protocol mode: no detection), or None when no landmarks were found."""
    marked = detect_and_landmark(image, ctx.detector, 1, tuple(float(v) for v in box), ctx.regressor)
    faces = fit_detections(ctx.fit_model, marked, ctx.fit_config)
    return faces[0].fit.expression[0].detach().cpu().numpy() if faces else None


def _read_json(path: Path):
    return json.loads(path.read_text())


def _earlier_methods(out_dir: Path, stem: str, methods: list[str]) -> dict[str, tuple]:
    """``--resume`` with methods added: the methods an earlier run already measured on ``stem``
    -> (its records, its outputs by target label, its feature arrays), so only new ones are run."""
    path = out_dir / "records" / f"{stem}.json"
    npz = out_dir / "records" / f"{stem}.npz"
    if not (path.is_file() and npz.is_file()):
        return {}
    records = _read_json(path)
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    done = {}
    for m in methods:
        recs = [r for r in records if r["method"] == m]
        keys = (f"{m}__fer", f"{m}__dlib")
        outputs = {r["target"]: out_dir / r["output"] for r in recs}
        if not recs or any(k not in arrays for k in keys) or not all(p.is_file() for p in outputs.values()):
            continue
        done[m] = (recs, {t: read_image(p) for t, p in outputs.items()}, {k: arrays[k] for k in keys})
    return done


@dataclass(frozen=True)
class _Run:
    """What every input of one :func:`compare_folder` run shares; ``references``: FER2013 class ->
    dlib measure -> median (:func:`completeness_references`), None without ``options.fer_faces``."""

    out_dir: Path
    specs: list
    methods: list[str]
    ctx: EditContext
    options: CompareOptions
    bundles: dict[str, object]
    fer: FerClassifier
    references: dict[str, dict[str, float]] | None = None

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.specs]

    @property
    def completeness_classes(self) -> dict[str, str]:
        """Target label -> its FER2013 class (:data:`FER_TARGETS`) for targets whose class has a reference."""
        refs = self.references or {}
        classes = {label: FER_TARGETS.get(label.lower()) for label in self.labels}
        return {label: c for label, c in classes.items() if c in CLASS_MEASURES and refs.get(c)}

    def prepare(self, item: BatchItem):
        """Read the image, detect its faces and their landmarks (the batch worker's first half)."""
        return detect_and_landmark(read_image(item.path), self.ctx.detector, None, None, self.ctx.regressor)

    def process(self, item: BatchItem, marked) -> ItemOutcome:
        return _compare_item(self, item, marked)


@dataclass(frozen=True)
class _Input:
    """One input's face, fit, plain 3D edit and the measurements every method is compared against."""

    image: np.ndarray
    base: ImageEdit
    mask: np.ndarray  # union of the 3D edit's regions: preservation is measured outside it
    landmarks: np.ndarray  # detected 68 landmarks of the input
    box: tuple  # the input's face box
    box_lm: tuple  # the re-fits' landmark box (protocol mode)
    source: np.ndarray  # (K,) fitted expression weights
    targets: dict[str, np.ndarray]  # label -> (K,) target weights
    yaw: float
    yaw_fit: float
    descriptor: np.ndarray
    probs: np.ndarray  # FER probabilities of the input


def _measure_input(run: _Run, item: BatchItem, marked) -> _Input:
    """Fit the compared face of ``marked``, edit it in 3D to every target and measure the input."""
    ctx, options, fer = run.ctx, run.options, run.fer
    image = marked.image
    faces = fit_detections(ctx.fit_model, marked, ctx.fit_config)
    if len(faces) <= options.face:
        raise InputError(f"face {options.face} requested but {len(faces)} face(s) found")
    plain_3d = dataclasses.replace(ctx, method="3d", refiner=None)
    base = edit_fitted(image, faces, run.specs, plain_3d, options.face)
    fit, edits = base.faces[0]
    lm_in = fit.landmarks_detected
    yaw_fit = float(fit.fit.yaw_pitch_roll[0, 0])
    return _Input(
        image=image,
        base=base,
        mask=np.logical_or.reduce([e.region for e in edits]),
        landmarks=lm_in,
        box=fit.bbox,
        box_lm=landmark_box(lm_in),
        source=fit.fit.expression[0].detach().cpu().numpy(),
        targets={label: e.target for label, e in zip(run.labels, edits, strict=True)},
        yaw=(options.yaw_truth or {}).get(item.path.name, yaw_fit),
        yaw_fit=yaw_fit,
        descriptor=face_descriptor(image, lm_in),
        probs=fer.predict(fer_crop(image, lm_in, fer.config)),
    )


def _measure_method(
    run: _Run, item: BatchItem, inp: _Input, method: str, outputs: dict[str, np.ndarray]
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Write ``method``'s outputs and measure them: (its records, its FER and dlib feature arrays)."""
    fer, classes = run.fer, list(run.fer.classes)
    records, fer_f, dlib_f = [], [], []
    for label in run.labels:
        out = outputs[label]
        rel = f"{method}/{item.stem}_{label}.png"
        write_image(run.out_dir / rel, out)
        rec = {"input": f"inputs/{item.stem}.png", "target": label, "method": method, "yaw": inp.yaw}
        rec["yaw_fit"] = inp.yaw_fit
        rec.update(output=rel, grid=f"grids/{item.stem}.png", source=str(item.path))
        ident = identity_metrics(inp.image, out, inp.landmarks, inp.box, run.ctx.detector, inp.descriptor)
        dlib_f.append(ident.pop("descriptor_out"))
        rec.update(ident)
        rec.update(preservation_metrics(inp.image, out, inp.mask))
        crop = fer_crop(out, inp.landmarks, fer.config)
        probs = fer.predict(crop)
        fer_f.append(fer.features(crop)[0])
        rec["fer_label"] = fer.label(probs)
        rec.update(refit_metrics(_refit(out, inp.box_lm, run.ctx), inp.targets[label], inp.source))
        target = FER_TARGETS.get(label.lower())
        if target is not None:
            rec.update(expression_metrics(probs, classes.index(target), inp.probs))
        records.append(rec)
    return records, {f"{method}__fer": np.array(fer_f), f"{method}__dlib": np.array(dlib_f)}


def _lacks_quality(run: _Run, record: dict) -> bool:
    """A record of ``run``'s methods without the per-row metrics of :func:`_row_quality`."""
    wanted = ("speckles",) if run.references is None else ("speckles", "completeness")
    mine = record["method"] in run.methods and record.get("output") is not None
    return mine and any(k not in record for k in wanted)


def _row_quality(run: _Run, image: np.ndarray, box_lm, before: dict | None, label: str, output) -> dict:
    """The metrics of one row measured on pixels alone: ``speckles`` (:func:`speckles` of the (H, W, 3)
    input and output) and, with references, ``completeness`` toward the target's FER2013 class
    median (dlib's landmarks inside the input's landmark box ``box_lm``, before = ``before``, eps
    0.01 inter-ocular; None for a target without a class or when undefined) with the measures it
    came from (``lm_before``, ``lm_after``: measure -> value, for pooled completeness)."""
    row: dict = {"speckles": speckles(image, output)}
    if run.references is None:
        return row
    klass = run.completeness_classes.get(label)
    if klass is None or before is None:
        return {**row, "completeness": None}
    after = read_measures(output, box_lm)
    value = completeness(before, after, run.references[klass], klass, eps=0.01)
    row["completeness"] = None if math.isnan(value) else value
    return {**row, "lm_before": before, "lm_after": after}


def _add_quality(run: _Run, image: np.ndarray, box_lm, records: list[dict], output_of) -> None:
    """Add :func:`_row_quality` to each of one input's ``records`` that lacks it (in place);
    ``output_of(record)`` gives the record's (H, W, 3) output."""
    lacking = [r for r in records if _lacks_quality(run, r)]
    before = read_measures(image, box_lm) if lacking and run.completeness_classes else None
    for r in lacking:
        r.update(_row_quality(run, image, box_lm, before, r["target"], output_of(r)))


def _kept_records(run: _Run, stem: str) -> list[dict] | None:
    """``--resume``: the records of ``records/<stem>.json`` when they hold every method, else None."""
    p = run.out_dir / "records" / f"{stem}.json"
    if not (run.options.resume and p.is_file()):
        return None
    records = _read_json(p)
    return records if set(run.methods) <= {r["method"] for r in records} else None


def _add_missing_metrics(run: _Run, item: BatchItem, marked, records: list[dict]) -> ItemOutcome:
    """``--resume`` on an input whose records hold every method but lack a per-row metric added since:
    measure it on the saved input (``inputs/<stem>.png``) and outputs and rewrite the records. No
    edit and no fit: the landmark box is that of the compared face's detected landmarks, which
    the fit takes as they are (``FaceFit.landmarks_detected``)."""
    t0 = time.perf_counter()
    if len(marked.detections) <= run.options.face:
        raise InputError(f"face {run.options.face} requested but {len(marked.detections)} face(s) found")
    image = read_image(run.out_dir / "inputs" / f"{item.stem}.png")
    box_lm = landmark_box(marked.landmarks[run.options.face])
    _add_quality(run, image, box_lm, records, lambda r: read_image(run.out_dir / r["output"]))
    atomic_write_json(run.out_dir / "records" / f"{item.stem}.json", records)
    n = sum(r["method"] in run.methods for r in records)
    return ItemOutcome(outputs=n, timings_ms={"add_metrics": [(time.perf_counter() - t0) * 1e3]})


def _compare_item(run: _Run, item: BatchItem, marked) -> ItemOutcome:
    """Every method on one input: outputs, records, features and the face grid (with ``--resume``
    and every method measured already, only the metrics added since: :func:`_add_missing_metrics`)."""
    kept = _kept_records(run, item.stem)
    if kept is not None:
        return _add_missing_metrics(run, item, marked, kept)
    out_dir, methods = run.out_dir, run.methods
    t0 = time.perf_counter()
    inp = _measure_input(run, item, marked)
    write_image(out_dir / "inputs" / f"{item.stem}.png", inp.image)
    timings: dict[str, list[float]] = {"fit_edit3d": [(time.perf_counter() - t0) * 1e3]}
    records, all_outputs = [], {}
    feats = {
        "input__fer": run.fer.features(fer_crop(inp.image, inp.landmarks, run.fer.config)),
        "input__dlib": inp.descriptor[None],
    }
    done = _earlier_methods(out_dir, item.stem, methods) if run.options.resume else {}
    for method, (recs, outputs, method_feats) in done.items():  # from an earlier run: kept
        records.extend(recs)
        all_outputs[method] = outputs
        feats.update(method_feats)
    for method in [m for m in methods if m not in done]:
        t1 = time.perf_counter()
        outputs = method_outputs(method, run.bundles.get(method), inp.image, inp.base, run.specs)
        if method != "3d":  # the plain 3D edit is timed in fit_edit3d
            timings[f"edit_{method}"] = [(time.perf_counter() - t1) * 1e3]
        all_outputs[method] = outputs
        recs, method_feats = _measure_method(run, item, inp, method, outputs)
        records.extend(recs)
        feats.update(method_feats)
    all_outputs = {m: all_outputs[m] for m in methods}
    _add_quality(run, inp.image, inp.box_lm, records, lambda r: all_outputs[r["method"]][r["target"]])
    records.sort(key=lambda r: methods.index(r["method"]))
    grid = face_grid(inp.image, all_outputs, run.labels, inp.box)
    write_image(out_dir / "grids" / f"{item.stem}.png", grid)
    atomic_write_npz(out_dir / "records" / f"{item.stem}.npz", **feats)
    atomic_write_json(out_dir / "records" / f"{item.stem}.json", records)
    timings["compare_total"] = [(time.perf_counter() - t0) * 1e3]
    return ItemOutcome(outputs=len(records), timings_ms=timings)


def compare_worker(run: _Run) -> _Run:
    """:func:`compare_folder`'s worker factory (module level, for Ray): the :class:`_Run` itself."""
    return run


def compare_done(run: _Run, item: BatchItem) -> bool:
    """``--resume``: ``records/<stem>.json`` (written last, locally or on Ray) holds every method,
    each row with every per-row metric."""
    kept = _kept_records(run, item.stem)
    return kept is not None and not any(_lacks_quality(run, r) for r in kept)


def _write_reports(run: _Run, items: list[BatchItem], summary: BatchSummary) -> None:
    """Over every input's records (resumed ones included): CSV, KID, report, summary files."""
    out_dir, methods, options = run.out_dir, run.methods, run.options
    records = []
    for item in items:
        path = out_dir / "records" / f"{item.stem}.json"
        if path.is_file():
            records.extend(r for r in json.loads(path.read_text()) if r["method"] in methods)
    extra: dict = {"methods": methods, "expressions": run.labels, "rows": len(records)}
    if records:
        write_metrics_csv(out_dir / "metrics.csv", records)
        real = None
        if options.real_dir is not None:
            paths = list_images([options.real_dir])[0][: options.max_real]
            real = real_features(paths, run.fer, run.ctx.detector)
        stems = [i.stem for i in items]
        refs, classes = run.references, run.completeness_classes
        sets = set_level(out_dir, stems, records, methods, real, refs, classes, options.seed)
        kids, kid_bins, pooled = sets["kid"], sets["kid_by_bin"], sets.get("completeness_pooled")
        notes = comparison_notes(sets["n_real"], options.real_dir, refs is not None)
        write_report(
            out_dir, records, kids, notes=notes, seed=options.seed, extra_by_bin=kid_bins, completeness=pooled
        )
        extra.update(sets)
        extra["metrics"] = summary_table(records, options.seed)
        md = summary_markdown(extra["metrics"], kids, kid_bins=kid_bins, completeness=pooled)
        atomic_write_text(out_dir / "summary.md", md)
    write_summary(out_dir, summary, "rows", **extra)


def compare_folder(
    inputs: list[str],
    out_dir: str | os.PathLike,
    specs: list,
    methods: list[str],
    ctx: EditContext,
    options: CompareOptions = CompareOptions(),
) -> BatchSummary:
    """Edit every input with every method to every target, measure, and write the report.

    Args:
        inputs: image files and/or folders.
        specs: :class:`editing.expressions.ExpressionSpec` targets.
        methods: names from :data:`METHODS`.
        ctx: an :class:`editing.api.EditContext` (the 3DMM fit and the 3D editor).

    Raises:
        Face3DError: no targets, no images, an unknown method, missing generator or FER weights.
    """
    if not specs:
        raise InputError("no target expression given")
    bundles = check_methods(methods)
    fer = FerClassifier.from_pretrained(options.fer_dir)
    items, problems = collect_items(inputs)
    if ctx.detector is None:
        ctx.detector = FaceDetector()
    refs = completeness_references(options.fer_faces, [s.label for s in specs], options.fer_n)
    run = _Run(Path(out_dir).absolute(), list(specs), methods, ctx, options, bundles, fer, refs)
    summary = run_batch(
        items,
        BatchJob(compare_worker, run, compare_done),
        workers=options.workers,
        desc="compare",
        problems=problems,
        progress=options.progress,
        ray=options.ray,
        threads=options.threads,
    )
    _write_reports(run, items, summary)
    return summary
