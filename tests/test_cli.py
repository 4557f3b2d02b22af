"""The face3d command: messages, exit codes, bad inputs, --resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from face3d.cli import main
from face3d.io import write_image


def _run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "face3d.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_missing_model_is_one_line_and_exit_2(tmp_path):
    env = dict(os.environ, FACE3D_CACHE_DIR=str(tmp_path / "cache"))
    r = _run("info", "--model-dir", str(tmp_path / "nowhere"), env=env)
    assert r.returncode == 2
    assert "git clone https://github.com/ICT-VGL/ICT-FaceKit" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "torch" in r.stdout  # versions were printed before the model lookup


def test_wrong_arguments_exit_2(tmp_path):
    r = _run("fit", str(tmp_path), "--out", str(tmp_path / "o"), "--max-faces", "0")
    assert r.returncode == 2 and "--max-faces" in r.stderr and "Traceback" not in r.stderr
    r = _run("fit")  # argparse: missing inputs
    assert r.returncode == 2
    edit = ("edit", str(tmp_path), "--out", str(tmp_path / "o"), "--expression", "happy")
    r = _run(*edit, "--max-face-px", "10")
    assert r.returncode == 2 and "--max-face-px" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.integration
def test_fit_batch_records_failures_and_resumes(tmp_path, ict_model, capsys):
    from face3d.demo import example_image

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write_image(src / "astronaut.png", example_image())
    (src / "sub" / "notes.jpg").write_text("this is not an image")
    (src / "sub" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(200))
    write_image(src / "noface.png", np.full((120, 160, 3), 128, np.uint8))
    out = tmp_path / "out"
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}

    code = main(["fit", str(src), "--out", str(out), "--ply"])
    assert code == 0
    import trimesh

    obj = trimesh.load(out / "astronaut_0.obj", process=False, force="mesh")
    ply = trimesh.load(out / "astronaut_0.ply", process=False)
    assert len(ply.vertices) == ict_model.n_vertices and len(obj.faces) == ict_model.faces.shape[0]
    assert (out / "astronaut_0.png").is_file() and (out / "astronaut_0.mtl").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processed"] == 1 and summary["faces"] == 1
    reasons = {os.path.basename(f["file"]): f["reason"] for f in summary["failures"]}
    assert set(reasons) == {"notes.jpg", "corrupt.jpg", "noface.png"}
    assert "not an image" in reasons["notes.jpg"]
    assert "no face" in reasons["noface.png"]
    rec = json.loads((out / "astronaut_0.json").read_text())
    for key in (
        "image",
        "face_index",
        "bbox",
        "landmarks_detected",
        "landmarks_fitted",
        "yaw",
        "pitch",
        "roll",
        "rotation",
        "translation",
        "camera",
        "identity",
        "expression",
        "fit_error_px",
        "timings_ms",
    ):
        assert key in rec, key
    assert np.array(rec["landmarks_fitted"]).shape == (68, 2)
    assert len(rec["expression"]) == 53 and "jawOpen" in rec["expression"]
    assert (out / "astronaut_0_overlay.png").is_file()
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before  # inputs untouched

    mtime = (out / "astronaut_0.json").stat().st_mtime_ns
    assert main(["fit", str(src), "--out", str(out), "--no-mesh", "--resume"]) == 0
    assert (out / "astronaut_0.json").stat().st_mtime_ns == mtime  # not redone
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_resume"] == 1 and summary["processed"] == 0


def test_empty_folder_fails_before_loading_anything(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["fit", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main(["edit", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--expression", "happy"]) == 2
    assert "no images found" in capsys.readouterr().err


def test_compare_missing_fer_faces_is_one_line_exit_2(tmp_path, capsys):
    from face3d.demo import example_image

    write_image(tmp_path / "a.png", example_image())
    args = ["compare", str(tmp_path / "a.png"), "--expressions", "happy", "--out", str(tmp_path / "o")]
    assert main([*args, "--fer-faces", str(tmp_path / "nope.npz")]) == 2
    err = capsys.readouterr().err
    assert "--fer-faces: no such file" in err and "Traceback" not in err


@pytest.mark.integration
def test_nothing_processed_exits_1(tmp_path, ict_model):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_text("nope")
    assert main(["fit", str(tmp_path / "bad"), "--out", str(tmp_path / "o2"), "--no-mesh"]) == 1


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("smiley", "valid presets"),
        ("jawOpen=2", "[0, 1]"),
        ("AU99=0.5", "AU12"),
        ("mouthSmile=0.5", "mouthSmile_L"),
        ("AU12=", "number"),
    ],
)
def test_edit_bad_spec_is_one_line_exit_2(tmp_path, spec, needle):
    from face3d.demo import example_image

    write_image(tmp_path / "a.png", example_image())
    r = _run("edit", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--expression", spec)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.integration
def test_fit_protocol_mode_and_workers(tmp_path, ict_model, aflw_dir):
    from face3d.eval.aflw import load_aflw
    from face3d.eval.metrics import nme

    samples = load_aflw(aflw_dir)[:3]
    boxes = {s.image_path.name: list(s.box) for s in samples}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    args = [str(s.image_path) for s in samples]
    out = tmp_path / "out"
    assert (
        main(
            [
                "fit",
                *args,
                "--out",
                str(out),
                "--bbox-file",
                str(tmp_path / "boxes.json"),
                "--workers",
                "2",
                "--no-mesh",
                "--no-overlay",
            ]
        )
        == 0
    )
    for s in samples:
        rec = json.loads((out / f"{s.image_path.stem}_0.json").read_text())
        assert rec["detector"] == "given"
        assert nme(np.array(rec["landmarks_fitted"]), s.landmarks) < 40
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main(["fit", *args, "--out", str(out), "--bbox-file", str(tmp_path / "bad.json")]) == 2


@pytest.mark.integration
def test_fit_residual_is_saved_and_applied(tmp_path, ict_model):
    import trimesh

    from face3d.demo import example_image

    write_image(tmp_path / "a.png", example_image())
    out = tmp_path / "out"
    assert main(["fit", str(tmp_path / "a.png"), "--out", str(out), "--residual", "--no-overlay"]) == 0
    residual = np.load(out / "a_0_residual.npy")
    assert residual.shape == (ict_model.n_vertices, 3) and np.abs(residual).max() > 0
    assert (out / "a_0_displacement.npy").is_file() and (out / "a_0_displacement.png").is_file()
    rec = json.loads((out / "a_0.json").read_text())
    assert "residual" in rec["timings_ms"]
    # the exported mesh carries the residual: linear model + residual
    import torch

    ident = torch.tensor(rec["identity"])[None]
    expr = torch.tensor([list(rec["expression"].values())])
    linear = ict_model(ident, expr)[0].numpy()
    mesh = trimesh.load(out / "a_0.obj", process=False, force="mesh")
    faces = ict_model.faces.numpy()
    np.testing.assert_allclose(mesh.vertices[mesh.faces], (linear + residual)[faces], atol=2e-3)
    # issue #33: the JSON's landmarks are the final mesh's; the linear fit's are kept beside them
    from face3d.camera import project

    R, t = torch.tensor(rec["rotation"])[None], torch.tensor(rec["translation"])[None]
    cam = rec["camera"]
    K = torch.tensor([[cam["fx"], cam["fy"], cam["cx"], cam["cy"]]])
    ids = ict_model.landmark_ids.numpy()

    def px(v):
        pts = torch.as_tensor(v[ids], dtype=torch.float32)[None]
        return project(pts @ R.transpose(1, 2) + t[:, None], K)[0]

    moved = np.array(rec["landmarks_fitted"]) - np.array(rec["landmarks_linear"])
    assert np.abs(moved).max() > 0.01
    np.testing.assert_allclose(moved, (px(linear + residual) - px(linear)).numpy(), atol=0.02)


def _capture_fit_folder(tmp_path, monkeypatch, flags) -> dict:
    """Run ``face3d fit`` on a blank image with ``flags``, the folder runner and the model load
    stubbed; returns the options and regressor the runner was given."""
    import face3d.cli as cli
    import face3d.fit as fit

    seen = {}

    class _Summary:
        failures, exit_code = [], 0

        def line(self, what):
            return "ok"

    def fake_fit_folder(inputs, out, model, config, options, regressor=None):
        seen["options"], seen["regressor"] = options, regressor
        return _Summary()

    monkeypatch.setattr(fit, "fit_folder", fake_fit_folder)
    monkeypatch.setattr(cli, "_model", lambda args, subset="face_head": None)
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert main(["fit", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), *flags]) == 0
    return seen


@pytest.mark.parametrize(
    "flags, fallback",
    [
        ((), True),
        (("--no-detect-fallback",), False),
        (("--detect-fallback",), True),
        (("--no-regressor",), False),
    ],
)
def test_fit_detect_fallback_flag(tmp_path, monkeypatch, flags, fallback):
    """The detection fallback is on by default, off with --no-detect-fallback or --no-regressor
    (it searches with the regressor); asking for both is a one-line error."""
    seen = _capture_fit_folder(tmp_path, monkeypatch, flags)
    assert seen["options"].landmarks.fallback is fallback
    assert (seen["regressor"] is None) == ("--no-regressor" in flags)
    both = ("--detect-fallback", "--no-regressor")
    r = _run("fit", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), *both)
    assert r.returncode == 2 and "--detect-fallback" in r.stderr and "Traceback" not in r.stderr


def test_fit_landmark_blend_flag(tmp_path, monkeypatch):
    """--landmark-blend sets LandmarkConfig.blend (default 0.5); outside [0, 1] it is a one-line error."""
    assert _capture_fit_folder(tmp_path, monkeypatch, ())["options"].landmarks.blend == 0.5
    off = _capture_fit_folder(tmp_path, monkeypatch, ("--landmark-blend", "0"))
    assert off["options"].landmarks.blend == 0.0
    r = _run("fit", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--landmark-blend", "1.5")
    assert r.returncode == 2 and "--landmark-blend" in r.stderr and "Traceback" not in r.stderr


def test_fit_no_profile_views_flag(tmp_path, monkeypatch):
    """--no-profile-views gives the runner the shipped regressor without the extra views of
    large-yaw faces (the default: "auto", with them); with --no-regressor it is a one-line error."""
    from face3d.regress.network import default_weights_dir

    assert _capture_fit_folder(tmp_path, monkeypatch, ())["regressor"] == "auto"
    if (default_weights_dir() / "config.json").is_file():
        reg = _capture_fit_folder(tmp_path, monkeypatch, ("--no-profile-views",))["regressor"]
        assert reg.profile_views == () and reg.scales == (0.9, 1.0, 1.1) and reg.flip
    both = ("--no-profile-views", "--no-regressor")
    r = _run("fit", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), *both)
    assert r.returncode == 2 and "--no-profile-views" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "command", [["fit"], ["edit", "--expression", "happy"], ["compare", "--expressions", "happy"]]
)
def test_an_output_folder_that_cannot_be_made_is_one_line_exit_2_before_any_work(
    tmp_path, capsys, monkeypatch, command
):
    from face3d.model import MorphableModel

    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(MorphableModel, "from_dir", no_work)
    write_image(tmp_path / "a.png", np.zeros((16, 16, 3), np.uint8))
    (tmp_path / "file").write_text("not a folder")
    for out in [tmp_path / "file" / "sub", *([Path("/proc/face3d-x")] if Path("/proc").is_dir() else [])]:
        assert main([command[0], str(tmp_path / "a.png"), "--out", str(out), *command[1:]]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "cannot create the output folder" in err and str(out) in err


def test_threads_are_set_once_by_the_entry_point(tmp_path, capsys, monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    (tmp_path / "empty").mkdir()
    assert main(["fit", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--threads", "3"]) == 2
    assert calls == [3]
    assert main(["fit", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert calls == [3]  # no --threads: torch's default, untouched
    assert main(["fit", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
