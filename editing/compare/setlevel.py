"""Set-level numbers of a method comparison: KID per method over all rows and per |yaw| bin, and
completeness pooled over faces per (method, bin, target) with a bootstrap interval over faces.

Both read what :func:`editing.compare.run.compare_folder` leaves in ``DIR/records``: per input
``<stem>.json`` (one record per method and target, with its ``yaw``) and ``<stem>.npz``
(``<method>__fer`` / ``<method>__dlib``: (T, 128) features, one row per target;
``input__fer`` / ``input__dlib``: (1, 128), the input's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from editing.compare.fer import fer_crop
from editing.compare.metrics import UNKNOWN_BIN, bin_name, kid
from editing.compare.quality import pooled_completeness_ci
from face3d.detect.dlib_detector import face_descriptor, predict_landmarks
from face3d.eval.metrics import BIN_NAMES
from face3d.io import read_image

BINS = ("all", *BIN_NAMES, UNKNOWN_BIN)
"""Row groups of the set-level tables, in display order: every row, then the |yaw| bins."""


def real_features(paths: list[Path], fer, detector) -> dict[str, np.ndarray]:
    """FER and dlib features of the largest face of each real photo (photos without a face are
    skipped): ``{"fer": (N, 128), "dlib": (N, 128)}``."""
    fer_feats, dlib_feats = [], []
    for p in paths:
        image = read_image(p)
        found = detector.detect(image, max_faces=1)
        if not found:
            continue
        lm = predict_landmarks(image, found[0].box)
        fer_feats.append(fer.features(fer_crop(image, lm, fer.config))[0])
        dlib_feats.append(face_descriptor(image, lm))
    return {"fer": np.array(fer_feats).reshape(-1, fer.config.feature_dim), "dlib": np.array(dlib_feats)}


def load_features(out_dir: Path, stems: list[str], names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """name ("input" or a method) -> {"fer": (N, 128), "dlib": (N, 128)}, the rows of
    ``records/<stem>.npz`` of ``stems`` concatenated in that order (missing files skipped)."""
    found: dict[str, dict[str, list]] = {m: {"fer": [], "dlib": []} for m in names}
    for stem in stems:
        path = Path(out_dir) / "records" / f"{stem}.npz"
        if not path.is_file():
            continue
        with np.load(path) as z:
            for m in names:
                for kind in ("fer", "dlib"):
                    if f"{m}__{kind}" in z:
                        found[m][kind].append(z[f"{m}__{kind}"])
    return {
        m: {k: np.concatenate(v) if v else np.zeros((0, 128)) for k, v in kinds.items()}
        for m, kinds in found.items()
    }


def kid_table(fake: dict[str, dict[str, np.ndarray]], real: dict[str, np.ndarray], seed: int) -> dict:
    """method -> {"n", "kid_fer", "kid_fer_std", "kid_dlib", "kid_dlib_std"}: :func:`kid` of each
    method's (N, 128) features against the (M, 128) ``real`` ones ("too few samples" under 2)."""
    table = {}
    for m, feats in fake.items():
        row: dict[str, float | int | str] = {}
        for kind in ("fer", "dlib"):
            x, y = feats[kind], real[kind]
            row["n"] = len(x)
            if len(x) >= 2 and len(y) >= 2:
                mean, std = kid(x, y, seed=seed)
                row[f"kid_{kind}"], row[f"kid_{kind}_std"] = mean, std
            else:
                row[f"kid_{kind}"] = "too few samples"
        table[m] = row
    return table


def stem_bins(records: list[dict]) -> dict[str, str]:
    """Input stem (of ``record["input"]``) -> the |yaw| bin of its records' ``yaw``, in first-seen order."""
    return {Path(r["input"]).stem: bin_name(r.get("yaw")) for r in records}


def kid_by_bin(
    out_dir: Path, bins: dict[str, str], methods: list[str], real: dict[str, np.ndarray] | None, seed: int
) -> dict[str, dict]:
    """|yaw| bin -> :func:`kid_table` of the methods' outputs of that bin's inputs (``bins``: stem ->
    bin, :func:`stem_bins`) against ``real`` (the same set for every bin) or, when None, against
    the features of that bin's inputs themselves. Bins in :data:`BINS` order, empty ones left out."""
    out = {}
    for b in BINS[1:]:
        stems = [s for s, sb in bins.items() if sb == b]
        if stems:
            feats = load_features(out_dir, stems, ["input", *methods])
            out[b] = kid_table({m: feats[m] for m in methods}, feats["input"] if real is None else real, seed)
    return out


def completeness_table(
    records: list[dict], classes: dict[str, str], references: dict[str, dict], seed: int = 0
) -> dict[str, dict[str, dict[str, dict]]]:
    """Completeness per method, row group (:data:`BINS`) and target, over the records that carry
    dlib's measures (``lm_before`` / ``lm_after``, see :func:`editing.compare.quality.read_measures`).

    Args:
        classes: target label -> its FER2013 class (a key of ``references`` and of
            :data:`editing.compare.quality.CLASS_MEASURES`); other targets are left out.
        references: class -> measure -> its median
            (:func:`editing.compare.quality.landmark_references`).

    Returns:
        method -> group -> target -> ``{"class", "median"`` (of the rows' ``completeness``),
        ``"pooled", "low", "high", "n"}`` (:func:`editing.compare.quality.pooled_completeness_ci`,
        bootstrap over the n faces, seeded).
    """
    rows = [r for r in records if r.get("lm_after") is not None and r["target"] in classes]
    out: dict = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        groups = {b: [r for r in mine if b == "all" or bin_name(r.get("yaw")) == b] for b in BINS}
        out[method] = {}
        for b, group in groups.items():
            for target in dict.fromkeys(r["target"] for r in group):
                cell = [r for r in group if r["target"] == target]
                klass = classes[target]
                befores, afters = [r["lm_before"] for r in cell], [r["lm_after"] for r in cell]
                pooled = pooled_completeness_ci(befores, afters, references[klass], klass, seed=seed)
                values = [r["completeness"] for r in cell if r.get("completeness") is not None]
                median = float(np.median(values)) if values else float("nan")
                stats = dict(zip(("pooled", "low", "high", "n"), pooled, strict=True))
                out[method].setdefault(b, {})[target] = {"class": klass, "median": median, **stats}
    return out


def set_level(
    out_dir: Path,
    stems: list[str],
    records: list[dict],
    methods: list[str],
    real: dict[str, np.ndarray] | None,
    references: dict[str, dict] | None,
    classes: dict[str, str],
    seed: int = 0,
) -> dict:
    """A comparison's set-level numbers, as ``summary.json`` holds them: ``kid`` (method -> KID row
    over every input of ``stems``), ``kid_by_bin`` (:func:`kid_by_bin`), ``n_real`` (real photos
    of the overall KID) and, with ``references``, ``completeness_references`` and
    ``completeness_pooled`` (:func:`completeness_table` of ``records`` with ``classes``).

    Args:
        real: ``{"fer": (M, 128), "dlib": (M, 128)}`` real-photo features, or None: the inputs'.
    """
    feats = load_features(out_dir, stems, ["input", *methods])
    reals = feats["input"] if real is None else real
    out = {
        "kid": kid_table({m: feats[m] for m in methods}, reals, seed),
        "kid_by_bin": kid_by_bin(out_dir, stem_bins(records), methods, real, seed),
        "n_real": len(reals["fer"]),
    }
    if references is not None:
        out["completeness_references"] = references
        out["completeness_pooled"] = completeness_table(records, classes, references, seed)
    return out
