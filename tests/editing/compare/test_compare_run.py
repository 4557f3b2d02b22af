"""``compare_folder`` end to end on the astronaut (integration: the real model, FER and generator
weights): records, images, the summary table, ``--resume`` that runs only a method added later,
and ``--resume`` that adds metrics added later to finished records without editing again."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ctx():
    from editing.api import EditContext
    from face3d.errors import ModelNotFoundError

    try:
        return EditContext.from_dir(refine="none")
    except ModelNotFoundError as err:
        pytest.skip(str(err))


def _fer_npz(path, image) -> str:
    """A FER2013-shaped npz whose happy and surprise classes are grey 48 px crops of ``image``."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    faces = [
        cv2.resize(grey[y : y + 200, 150:330], (48, 48), interpolation=cv2.INTER_AREA) for y in (10, 20, 30)
    ]
    classes = np.array(["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"])
    np.savez(path, x_test=np.stack(faces * 2), y_test=np.array([3, 3, 3, 5, 5, 5]), classes=classes)
    return str(path)


def test_compare_then_resume_with_an_added_method(ctx, tmp_path, monkeypatch):
    from editing.compare import run
    from editing.compare.run import CompareOptions, compare_folder
    from editing.expressions import ARKIT_NAMES, parse_expressions
    from face3d.demo import example_image
    from face3d.io import write_image

    src = tmp_path / "in" / "astronaut.png"
    write_image(src, example_image())
    out = tmp_path / "out"
    specs = parse_expressions("happy", ARKIT_NAMES)
    fer = _fer_npz(tmp_path / "fer.npz", example_image())
    options = CompareOptions(progress=False, fer_faces=fer, fer_n=3)
    # a face-free image and a text file named .jpg are recorded as failures; the batch goes on
    blank, text = tmp_path / "in" / "blank.png", tmp_path / "in" / "notes.jpg"
    write_image(blank, np.full((120, 160, 3), 128, np.uint8))
    text.write_text("not an image")
    first = compare_folder([str(tmp_path / "in")], out, specs, ["3d"], ctx, options)
    reasons = dict(first.failures)
    assert first.outputs == 1 and set(reasons) == {str(blank), str(text)}, reasons
    assert "face" in reasons[str(blank)] and "not an image" in reasons[str(text)]
    assert json.loads((out / "summary.json").read_text())["failures"]
    recs = json.loads((out / "records" / "astronaut.json").read_text())
    assert [r["method"] for r in recs] == ["3d"]
    assert recs[0]["face_detected"] and 0.0 <= recs[0]["p_target"] <= 1.0
    # (b): the 3DMM re-fitted on the 3D output lands nearer the target than the input did
    assert recs[0]["refit_mae"] is not None and recs[0]["refit_gain"] > 0, recs[0]
    # the plain 3D edit keeps the background exactly (preservation measured outside the region)
    assert recs[0]["psnr_bg"] > 40
    # pixel metrics: speckles, and completeness toward the (here: astronaut) happy median by dlib
    assert isinstance(recs[0]["speckles"], int) and recs[0]["speckles"] >= 0
    assert set(recs[0]["lm_before"]) == {"mouth_width", "corner_lift", "lip_gap", "brow_height"}
    assert recs[0]["lm_after"]["mouth_width"] > recs[0]["lm_before"]["mouth_width"]  # a smile widens
    assert recs[0]["completeness"] is None or math.isfinite(recs[0]["completeness"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["completeness_pooled"]["3d"]["all"]["happy"]["n"] == 1
    assert summary["kid_by_bin"] and set(summary["completeness_references"]) == {"happy"}
    out_3d = out / recs[0]["output"]
    stamp = out_3d.stat().st_mtime_ns

    blank.unlink()
    text.unlink()
    resume = CompareOptions(progress=False, resume=True, fer_faces=fer, fer_n=3)
    resumed = compare_folder([str(src)], out, specs, ["3d", "3d-gan"], ctx, resume)
    assert not resumed.failures and resumed.outputs == 2  # records, the kept one included
    recs2 = json.loads((out / "records" / "astronaut.json").read_text())
    assert [r["method"] for r in recs2] == ["3d", "3d-gan"]
    assert recs2[0] == recs[0]  # kept, not redone
    assert out_3d.stat().st_mtime_ns == stamp
    assert (out / recs2[1]["output"]).is_file()
    summary = json.loads((out / "summary.json").read_text())
    table = summary["metrics"]["psnr_bg"]
    assert set(table) == {"3d", "3d-gan"} and table["3d-gan"]["all"]["n"] == 1

    # records made before the pixel metrics existed: --resume adds them without editing again
    new_keys = ("speckles", "completeness", "lm_before", "lm_after")
    records_json = out / "records" / "astronaut.json"
    records_json.write_text(json.dumps([{k: v for k, v in r.items() if k not in new_keys} for r in recs2]))
    npz_stamp = (out / "records" / "astronaut.npz").stat().st_mtime_ns

    def no_edit(*args, **kwargs):
        raise AssertionError("resume re-ran an edit")

    monkeypatch.setattr(run, "method_outputs", no_edit)
    monkeypatch.setattr(run, "edit_fitted", no_edit)
    monkeypatch.setattr(run, "fit_detections", no_edit)
    added = compare_folder([str(src)], out, specs, ["3d", "3d-gan"], ctx, resume)
    assert not added.failures and added.processed == 1 and added.skipped == 0
    recs3 = json.loads(records_json.read_text())
    assert [r["speckles"] for r in recs3] == [r["speckles"] for r in recs2]
    assert [r["completeness"] for r in recs3] == pytest.approx([r["completeness"] for r in recs2])
    assert [r["lm_before"] for r in recs3] == [r["lm_before"] for r in recs2]
    assert [r["lm_after"] for r in recs3] == [r["lm_after"] for r in recs2]
    assert (out / "records" / "astronaut.npz").stat().st_mtime_ns == npz_stamp
    assert out_3d.stat().st_mtime_ns == stamp

    # everything present now: a further run skips the image
    again = compare_folder([str(src)], out, specs, ["3d", "3d-gan"], ctx, resume)
    assert again.skipped == 1
