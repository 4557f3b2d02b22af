"""Comparison metrics (identity, preservation, KID, bootstrap, yaw bins), the HTML report and the
method checks of ``compare_folder``."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from editing.compare.metrics import (
    bootstrap_ci,
    changed_fraction,
    expression_metrics,
    group_by_yaw,
    kid,
    masked_psnr,
    masked_ssim,
    preservation_metrics,
    same_identity,
)
from face3d.errors import Face3DError


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured (64, 80, 3) image and a central (64, 80) face mask."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    mask = np.zeros((64, 80), bool)
    mask[16:48, 24:56] = True
    return image, mask


# ------------------------------------------------------------------------------ preservation
def test_identical_images_preserve_everything():
    image, mask = _scene()
    assert masked_psnr(image, image.copy(), mask) == math.inf
    assert masked_ssim(image, image.copy(), mask) == pytest.approx(1.0)
    assert changed_fraction(image, image.copy(), mask) == 0.0


def test_changes_inside_the_mask_do_not_count():
    image, mask = _scene()
    out = image.copy()
    out[mask] = 255 - out[mask]
    m = preservation_metrics(image, out, mask)
    assert m["psnr_bg"] == math.inf and m["ssim_bg"] == pytest.approx(1.0) and m["changed_bg"] == 0.0


def test_shifted_background_lowers_preservation():
    image, mask = _scene()
    small = np.roll(image, 1, axis=1)
    small[mask] = image[mask]
    large = np.roll(image, 5, axis=1)
    large[mask] = image[mask]
    noisy = np.clip(image.astype(int) + 3, 0, 255).astype(np.uint8)
    assert math.isfinite(masked_psnr(image, small, mask))
    assert masked_ssim(image, small, mask) < 0.5  # a random texture decorrelates when shifted
    assert masked_psnr(image, noisy, mask) > masked_psnr(image, large, mask)
    assert changed_fraction(image, large, mask) > 0.9


def test_preservation_checks_shapes():
    image, mask = _scene()
    with pytest.raises(ValueError, match="differ in shape"):
        masked_psnr(image, image[:-1], mask)
    with pytest.raises(ValueError, match="bool"):
        masked_psnr(image, image, mask.astype(np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        masked_psnr(image.astype(np.float32), image, mask)
    with pytest.raises(ValueError, match="whole image"):
        masked_psnr(image, image, np.ones_like(mask))


# ------------------------------------------------------------------------------ identity
@pytest.fixture(scope="module")
def astronaut_face():
    skimage_data = pytest.importorskip("skimage.data")
    from face3d.detect import DetectConfig, FaceDetector, predict_landmarks

    image = np.ascontiguousarray(skimage_data.astronaut()[:256, 100:356])  # the face, ~90 px
    detector = FaceDetector(DetectConfig(use_cnn=False))
    det = detector.detect(image, max_faces=1)[0]
    return image, predict_landmarks(image, det.box), det.box, detector


def test_identical_face_has_zero_descriptor_distance(astronaut_face):
    from editing.compare.metrics import identity_metrics

    image, lm, box, detector = astronaut_face
    m = identity_metrics(image, image.copy(), lm, box, detector)
    assert m["identity_distance"] == pytest.approx(0.0, abs=1e-9)
    assert m["same_identity"] and m["face_detected"]
    assert m["descriptor_out"].shape == (128,)
    blank = np.full_like(image, 128)
    gone = identity_metrics(image, blank, lm, box, detector)
    assert not gone["face_detected"] and gone["identity_distance"] > 0.3


def test_same_identity_threshold():
    assert same_identity(0.59) and not same_identity(0.6)


# ------------------------------------------------------------------------------ expression, realism
def test_expression_metrics():
    p_in = np.array([0.1, 0.0, 0.0, 0.2, 0.1, 0.1, 0.5])
    p_out = np.array([0.0, 0.0, 0.0, 0.7, 0.1, 0.1, 0.1])
    m = expression_metrics(p_out, 3, p_in)
    assert m == {"p_target": 0.7, "hit": True, "p_target_gain": pytest.approx(0.5)}
    with pytest.raises(ValueError):
        expression_metrics(p_out, 7)


def test_kid_separates_distributions():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 16))
    same = rng.normal(size=(300, 16))
    moved = rng.normal(size=(300, 16)) + 0.5
    k_same, _ = kid(same, real, n_subsets=10, subset_size=100)
    k_moved, std = kid(moved, real, n_subsets=10, subset_size=100)
    assert abs(k_same) < 0.02 < k_moved and std > 0
    assert kid(same[:50], real[:50]) == (pytest.approx(kid(same[:50], real[:50])[0]), 0.0)
    with pytest.raises(ValueError):
        kid(same[:, :8], real)
    with pytest.raises(ValueError):
        kid(same[:1], real)


def test_split_kid_is_paired_over_the_same_splits():
    from editing.compare.metrics import split_kid

    rng = np.random.default_rng(0)
    real = rng.normal(size=(80, 6))
    same, moved = real + 0.05 * rng.normal(size=real.shape), rng.normal(size=(80, 6)) + 1.0
    per = split_kid({"same": same, "moved": moved}, real, splits=20, seed=1)
    assert per["same"].shape == (20,) and np.median(per["moved"]) > np.median(per["same"]) + 10
    assert (per["moved"] - per["same"] > 0).all()  # paired: the same halves for both
    again = split_kid({"same": same}, real, splits=20, seed=1)["same"]
    np.testing.assert_array_equal(again, per["same"])  # seeded, and independent of the other methods
    with pytest.raises(ValueError, match="8\\+ faces"):
        split_kid({"x": same[:6]}, real[:6])
    with pytest.raises(ValueError, match="arrays like"):
        split_kid({"x": same[:, :3]}, real)


# ------------------------------------------------------------------------------ statistics
def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(1)
    values = rng.normal(5.0, 1.0, 200).tolist() + [None, float("nan")]
    mean, lo, hi, n = bootstrap_ci(values, seed=3)
    assert n == 200 and lo < mean < hi and hi - lo < 0.5
    assert bootstrap_ci(values, seed=3) == (mean, lo, hi, n)
    assert bootstrap_ci([math.inf, 30.0], cap=100.0)[0] == pytest.approx(65.0)
    assert bootstrap_ci([math.inf, math.inf], cap=100.0)[:3] == (math.inf, math.inf, math.inf)
    assert math.isnan(bootstrap_ci([])[0]) and bootstrap_ci([True, False])[0] == 0.5


def test_group_by_yaw():
    recs = [{"yaw": -10.0}, {"yaw": 45.0}, {"yaw": 95.0}, {"yaw": None}, {"yaw": 29.9}]
    groups = group_by_yaw(recs)
    assert list(groups) == ["[0,30)", "[30,60)", "[60,90]", "unknown"]
    assert [len(v) for v in groups.values()] == [2, 1, 1, 1]


# ------------------------------------------------------------------------------ report
def _records(tmp_path: Path) -> list[dict]:
    from editing.compare.grids import face_grid
    from face3d.io import write_image

    rng = np.random.default_rng(0)
    recs = []
    for i, yaw in enumerate((5.0, 40.0, 70.0)):
        image = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
        write_image(tmp_path / "inputs" / f"in{i}.png", image)
        grid = face_grid(
            image, {"3d": {"happy": image}, "2d": {"happy": image}}, ["happy"], (4, 4, 20, 20), 16
        )
        assert grid.shape == (16, 48, 3)
        write_image(tmp_path / "grids" / f"in{i}.png", grid)
        for method in ("3d", "2d"):
            out = f"{method}/in{i}_happy.png"
            write_image(tmp_path / out, rng.integers(0, 255, (24, 24, 3), dtype=np.uint8))
            recs.append(
                {
                    "input": f"inputs/in{i}.png",
                    "target": "happy",
                    "method": method,
                    "yaw": yaw,
                    "output": out,
                    "grid": f"grids/in{i}.png",
                    "identity_distance": 0.3 + 0.1 * i,
                    "psnr_bg": math.inf if method == "3d" else 30.0 + i,
                    "hit": i % 2 == 0,
                }
            )
    recs.append({"input": "inputs/in0.png", "target": "sad", "method": "2d", "yaw": 5.0, "output": None})
    return recs


def test_report_links_every_image(tmp_path):
    from editing.compare.report import write_metrics_csv, write_report

    recs = _records(tmp_path)
    path = write_report(tmp_path, recs, extra={"3d": {"kid_fer": 0.01}, "2d": {"kid_fer": 0.02}})
    text = path.read_text()
    named = set(re.findall(r'(?:src|href)="([^"]+)"', text))
    assert len(named) >= 6 + 3 + 3 + 3  # outputs, inputs, plots, grids
    assert all((tmp_path / p).is_file() for p in named)
    assert "plots/psnr_bg_vs_yaw.png" in named and "[30,60)" in text and "kid_fer" in text
    csv_text = write_metrics_csv(tmp_path / "metrics.csv", recs).read_text().splitlines()
    assert csv_text[0].startswith("input,target,method,yaw,yaw_fit,output") and len(csv_text) == len(recs) + 1


def test_report_refuses_missing_images(tmp_path):
    from editing.compare.report import write_report

    recs = _records(tmp_path)
    (tmp_path / "2d" / "in1_happy.png").unlink()
    with pytest.raises(Face3DError, match="in1_happy.png"):
        write_report(tmp_path, recs)
    with pytest.raises(Face3DError, match="no records"):
        write_report(tmp_path, [])


def test_report_shows_a_grid_per_bin_and_opens_offline(tmp_path):
    from editing.compare.grids import bin_file, bin_montage
    from editing.compare.report import summary_markdown, summary_table, write_report
    from face3d.io import read_image

    recs = _records(tmp_path)
    for r in recs:
        r["speckles"] = 3 if r["method"] == "2d" else 0
    kid_all = {"3d": {"n": 3, "kid_fer": 0.01, "kid_fer_std": 0.002}, "2d": {"n": 4, "kid_fer": 0.02}}
    kid_bins = {"[0,30)": {"3d": {"n": 1, "kid_fer": 0.0314, "kid_fer_std": 0.0}}}
    cell = {"class": "happy", "median": 0.2, "pooled": 0.29, "low": 0.1, "high": 0.4, "n": 3}
    pooled = {"3d": {"all": {"happy": cell}, "[0,30)": {"happy": cell}}}
    text = write_report(tmp_path, recs, kid_all, extra_by_bin=kid_bins, completeness=pooled).read_text()
    assert "http" not in text and "<script" not in text and "@import" not in text
    named = set(re.findall(r'(?:src|href)="([^"]+)"', text))
    assert all((tmp_path / p).is_file() for p in named)
    for name, stem in (("[0,30)", "0_30"), ("[30,60)", "30_60"), ("[60,90]", "60_90")):
        assert bin_file(name) == f"grids/bin_{stem}.png" and bin_file(name) in named
        assert f"<h3>{name}</h3>" in text
    # one input per bin: the montage is that input's grid
    montage = read_image(tmp_path / bin_file("[30,60)"))
    assert np.array_equal(montage, read_image(tmp_path / "grids" / "in1.png"))
    assert "0.0314" in text and "plots/speckles_vs_yaw.png" in named
    assert "Completeness pooled" in text and "near frontal" in text
    stacked = bin_montage([np.zeros((16, 48, 3), np.uint8), np.zeros((10, 32, 3), np.uint8)], gap=4)
    assert stacked.shape == (30, 48, 3) and (stacked[16:20] == 255).all() and (stacked[20:, 32:] == 255).all()
    md = summary_markdown(summary_table(recs), kid_all, kid_bins=kid_bins, completeness=pooled)
    assert "| 3d | [0,30) | 1 | 0.0314 ± 0.0000 | - |" in md
    assert re.search(r"\| 3d \| \[0,30\) \| happy \| 3 \| 0\.20 \| 0\.29 \[", md), md
    assert "speckles" in md


# ------------------------------------------------------------------------------ methods
def test_methods_without_weights_fail_clearly(tmp_path, monkeypatch):
    from editing.compare import run

    assert run.parse_methods("3d, 2d,3d") == ["3d", "2d"]
    with pytest.raises(Face3DError, match="--methods"):
        run.parse_methods("3d,4d")
    from editing.gan import checkpoint

    shipped = {"2d": tmp_path / "defgan", "texture": tmp_path / "gan3d"}
    monkeypatch.setattr(checkpoint, "SHIPPED", shipped)
    for method, folder in (("2d", "defgan"), ("3d-gan", "gan3d")):
        with pytest.raises(Face3DError, match=f"{folder}.config.json: generator checkpoint file missing"):
            run.check_methods(["3d", method])
    assert run.check_methods(["3d"]) == {}


def test_aflw_ground_truth_yaw_is_read_beside_images(tmp_path):
    from scipy.io import savemat

    from editing.compare.run import aflw_yaws
    from face3d.io import write_image

    img = np.zeros((8, 8, 3), np.uint8)
    write_image(tmp_path / "image00001.jpg", img)
    write_image(tmp_path / "other.png", img)
    savemat(tmp_path / "image00001.mat", {"Pose_Para": np.array([[0.1, np.deg2rad(-70.0), 0.2, 0, 0, 0, 1]])})
    yaws = aflw_yaws([str(tmp_path)])
    assert set(yaws) == {"image00001.jpg"}
    assert abs(yaws["image00001.jpg"] + 70.0) < 1e-9


def test_summary_markdown_rows_and_values(tmp_path):
    from editing.compare.report import summary_markdown, summary_table

    recs = _records(tmp_path)
    table = summary_table(recs, seed=0)
    md = summary_markdown(
        table, {"3d": {"n": 3, "kid_fer": 0.0123, "kid_fer_std": 0.001, "kid_dlib": "too few"}}
    )
    lines = md.splitlines()
    rows = [ln for ln in lines if ln.startswith("| 3d |") or ln.startswith("| 2d |")]
    # two methods x (all + three bins), then the KID row
    assert len(rows) == 2 * 4 + 1
    row_3d_mid = next(ln for ln in rows if ln.startswith("| 3d | [30,60) |"))
    assert "0.400" in row_3d_mid  # identity distance of the 40 degree input: 0.3 + 0.1
    assert "0.0123 ± 0.0010" in md and "too few" in md


def test_refit_metrics():
    from editing.compare.metrics import refit_metrics

    target, source = np.array([0.8, 0.0, 0.4]), np.array([0.0, 0.0, 0.1])
    m = refit_metrics(np.array([0.6, 0.1, 0.4]), target, source)
    assert m["refit_mae"] == pytest.approx(0.1) and m["refit_gain"] == pytest.approx(1.1 / 3 - 0.1)
    assert refit_metrics(None, target, source) == {"refit_mae": None, "refit_gain": None}
    with pytest.raises(ValueError, match="expected"):
        refit_metrics(np.zeros(2), target, source)
