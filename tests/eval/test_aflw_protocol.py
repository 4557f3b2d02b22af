"""AFLW2000-3D protocol mode on a few dev images (skipped when the shared data is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from face3d.detect import dlib_box_from_landmark_box, landmark_box, predict_landmarks

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "aflw2000-3d-dev"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} is absent"),
]


def _frontal_samples(n: int):
    """The first ``n`` images (by name) with |yaw| < 30 deg: (RGB image, GT (68, 2) 0-based)."""
    import scipy.io

    from face3d.io import read_image

    out = []
    for jpg in sorted(DATA.glob("*.jpg")):
        mat = scipy.io.loadmat(str(jpg.with_suffix(".mat")))
        if abs(np.degrees(mat["Pose_Para"][0, 1])) < 30:
            out.append((read_image(jpg), np.asarray(mat["pt3d_68"], np.float64)[:2].T - 1.0))
            if len(out) == n:
                break
    return out


def test_protocol_mode_nme_frontal_bin():
    samples = _frontal_samples(10)
    assert len(samples) == 10
    errors = []
    for image, gt in samples:
        box = landmark_box(gt)
        pred = predict_landmarks(image, dlib_box_from_landmark_box(box))
        w, h = box[2] - box[0], box[3] - box[1]
        errors.append(np.linalg.norm(pred - gt, axis=1).mean() / np.sqrt(w * h))
    nme = 100 * float(np.mean(errors))
    assert nme < 6.0, f"NME {nme:.2f} % on the [0, 30) bin; per image {np.round(100 * np.array(errors), 1)}"
