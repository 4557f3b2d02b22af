"""The scripts (``scripts/<folder>/``): their layout, the paths the assets' COMMAND.txt files call,
and the helpers that need no model or data."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
FOLDERS = ("bench", "experiments", "figures", "rebuild")


def _script(path: str):
    """The script ``scripts/<path>.py`` (``path``: "folder/name") loaded as a module."""
    name = path.replace("/", "_")
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{path}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scripts_live_in_their_folders_and_import_no_other_script():
    """No script at the top of scripts/, every one in a known folder, none importing another
    script (shared helpers belong in the library: e.g. face3d.eval.face_free)."""
    assert not list(SCRIPTS.glob("*.py"))
    assert sorted(p.name for p in SCRIPTS.iterdir() if p.is_dir() and p.name != "__pycache__") == list(
        FOLDERS
    )
    scripts = sorted(SCRIPTS.glob("*/*.py"))
    names = {p.stem for p in scripts}
    assert len(names) == len(scripts)  # one name, one script
    for path in scripts:
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                imported.add(".")
        assert not imported & (names | {"."}), f"{path.relative_to(ROOT)} imports a script"


def test_every_script_path_in_commands_and_docstrings_exists():
    """Each ``scripts/...py`` that an asset's COMMAND.txt or a script's own text names is there."""
    pattern = re.compile(r"scripts/[\w/]+\.py")
    files = sorted(ROOT.glob("assets/*/COMMAND.txt")) + sorted(SCRIPTS.glob("*/*.py"))
    mentioned = {(f.relative_to(ROOT), m) for f in files for m in pattern.findall(f.read_text())}
    assert any(str(f).startswith("assets") for f, _ in mentioned)
    missing = sorted((str(f), m) for f, m in mentioned if not (ROOT / m).is_file())
    assert not missing


def test_yaw_switch_rescores_the_default_pipeline(tmp_path, capsys):
    recs = [  # yaw (label), the regressor's yaw, NME of dlib + fit and of regressor + fit
        {"mode": "protocol", "yaw": 10.0, "regressor_yaw": 12.0, "dlib_fit": 3.0, "regressor_fit": 5.0},
        {"mode": "protocol", "yaw": 45.0, "regressor_yaw": 25.0, "dlib_fit": 20.0, "regressor_fit": 6.0},
        {"mode": "protocol", "yaw": -75.0, "regressor_yaw": -70.0, "dlib_fit": 30.0, "regressor_fit": 7.0},
        {"mode": "protocol", "yaw": 80.0, "regressor_yaw": None, "dlib_fit": None, "regressor_fit": None},
        # a face the upright search turned: the regressor's at any threshold, whatever its yaw
        {
            "mode": "auto",
            "yaw": 5.0,
            "regressor_yaw": 3.0,
            "regressor_turns": 2,
            "dlib_fit": 60.0,
            "regressor_fit": 8.0,
        },
        {"mode": "auto", "yaw": 6.0, "regressor_yaw": 4.0, "dlib_fit": 2.0, "regressor_fit": 4.0},
    ]
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "switch.json"
    switch = _script("experiments/yaw_switch")
    assert switch.main([str(path), "--thresholds", "0,20,30", "--out", str(out)]) == 0
    res = json.loads(out.read_text())["results"]["protocol"]
    assert res["0"] == {"[0,30)": 5.0, "[30,60)": 6.0, "[60,90]": 7.0, "balanced": 6.0}
    assert res["20"]["[0,30)"] == 3.0 and res["20"]["[30,60)"] == 6.0  # 25 deg stays with the regressor
    assert res["30"]["[30,60)"] == 20.0 and res["30"]["balanced"] == pytest.approx(10.0)
    auto = json.loads(out.read_text())["results"]["auto"]
    assert auto["30"]["[0,30)"] == 5.0 and auto["0"]["[0,30)"] == 6.0  # (8 + 2) / 2, (8 + 4) / 2
    assert switch.main([str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


BAD_ARGUMENTS = [
    ("experiments/recrop_scale", ["--scales", "1,0"], "--scales: 0 is outside (0, inf]"),
    ("experiments/recrop_scale", ["--scales", "1,x"], "--scales: expected a number, got 'x'"),
    ("experiments/recrop_scale", ["--steps", "0"], "--steps: must be >= 1, got 0"),
    ("experiments/recrop_scale", ["--split", "valid"], "--split: invalid choice: 'valid'"),
    ("experiments/landmark_blend", ["--weights", "0,1.5"], "--weights: 1.5 is outside [0, 1]"),
    ("experiments/landmark_blend", ["--fit-weight", "-0.1"], "--fit-weight: -0.1 is outside [0, 1]"),
    ("experiments/landmark_blend", ["--split", "valid"], "--split: invalid choice"),
    ("experiments/fit_jaw_weight", ["--weights", "1,-1"], "--weights: -1 is outside [0, inf]"),
    ("experiments/fit_jaw_weight", ["--split", "all2"], "--split: invalid choice"),
    ("experiments/profile_views", ["--thresholds", "-5"], "--thresholds: -5 is outside [0, inf]"),
    ("experiments/profile_views", ["--split", "x"], "--split: invalid choice"),
    ("rebuild/profile_labelled", ["--max-pitch", "100"], "--max-pitch: 100 is outside [0, 90]"),
    ("rebuild/profile_labelled", ["--size", "8"], "--size: must be >= 32, got 8"),
]


@pytest.mark.parametrize("script,argv,message", BAD_ARGUMENTS)
def test_tuning_scripts_reject_bad_arguments(tmp_path, capsys, script, argv, message):
    """Checked before anything loads: argparse's one-line usage error (exit 2), nothing written."""
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as exc:
        _script(script).main([*argv, "--out", str(out)])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert not out.exists()


def test_soup_regressor_averages_folders_and_refuses_bad_input(tmp_path, capsys):
    """The soup script writes the mean of its inputs; a missing folder is a one-line error (exit 2),
    an output that is an input or a weight count that differs is an argparse usage error."""
    import torch

    from face3d.regress.network import RegressorConfig, RegressorNet

    cfg = RegressorConfig(size=32, channels=(8, 8, 16), strides=(2, 2), hidden=16, n_identity=4)
    nets = []
    for i in range(2):
        torch.manual_seed(i)
        net = RegressorNet(cfg)
        with torch.no_grad():
            net.head.weight.normal_()
        net.save_pretrained(tmp_path / f"w{i}")
        nets.append(net)
    soup = _script("rebuild/soup_regressor")
    args = [str(tmp_path / "w0"), str(tmp_path / "w1")]
    assert soup.main([*args, "--weights", "3,1", "--out", str(tmp_path / "s")]) == 0
    back = RegressorNet.from_pretrained(tmp_path / "s")
    torch.testing.assert_close(back.head.weight, 0.75 * nets[0].head.weight + 0.25 * nets[1].head.weight)
    assert soup.main([str(tmp_path / "w0"), str(tmp_path / "nope"), "--out", str(tmp_path / "t")]) == 2
    assert "regressor checkpoint file missing" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
    for argv, message in (
        ([*args, "--out", str(tmp_path / "w1")], "--out: is one of the input folders"),
        ([*args, "--weights", "1", "--out", str(tmp_path / "u")], "--weights: 1 weights for 2 folders"),
    ):
        with pytest.raises(SystemExit) as exc:
            soup.main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err
    assert torch.equal(RegressorNet.from_pretrained(tmp_path / "w1").head.weight, nets[1].head.weight)


def test_pitch_breakdown_bins_the_records_by_labelled_pitch(tmp_path, capsys):
    from scipy.io import savemat

    data = tmp_path / "aflw"
    data.mkdir()
    for i, pitch in enumerate([5.0, -20.0, 40.0, -70.0]):
        (data / f"image{i:05d}.jpg").write_bytes(b"")
        pose = np.deg2rad([[pitch, 10.0, 0.0, 0, 0, 0, 1]])
        savemat(data / f"image{i:05d}.mat", {"pt3d_68": np.zeros((3, 68)), "Pose_Para": pose})
    recs = tmp_path / "r.jsonl"
    nmes = [2.0, 4.0, 6.0, 8.0]
    lines = [json.dumps({"image": f"image{i:05d}.jpg", "regressor": e}) for i, e in enumerate(nmes)]
    recs.write_text("\n".join(lines) + "\n")
    out = tmp_path / "p.json"
    script = _script("bench/pitch_breakdown")
    assert script.main([str(recs), "--edges", "0,30,60", "--data", str(data), "--out", str(out)]) == 0
    table = json.loads(out.read_text())["results"][str(recs)]
    assert table["[0,30)"] == {"n": 2, "nme": 3.0, "median_nme": 3.0, "share": 0.3}
    assert table["[30,60)"]["nme"] == 6.0
    assert table["[60,inf)"] == {"n": 1, "nme": 8.0, "median_nme": 8.0, "share": 0.4}
    other = tmp_path / "o.jsonl"
    other.write_text(json.dumps({"image": "image09999.jpg", "regressor": 1.0}) + "\n")
    assert script.main([str(other), "--data", str(data), "--out", str(tmp_path / "x.json")]) == 2
    assert "1 images not in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main([str(recs), "--edges", "30,0", "--data", str(data)])
    assert "--edges: must be ascending" in capsys.readouterr().err


def test_grow_regressor_writes_a_loadable_wider_network_and_refuses_bad_input(tmp_path, capsys):
    import torch

    from face3d.regress.network import RegressorConfig, RegressorNet

    cfg = RegressorConfig(size=32, channels=(8, 8, 16), strides=(2, 2), hidden=16, n_identity=4)
    torch.manual_seed(0)
    RegressorNet(cfg).eval().save_pretrained(tmp_path / "w")
    grow = _script("rebuild/grow_regressor")
    out = tmp_path / "g"
    argv = ["--init", str(tmp_path / "w"), "--width", "2", "--extra-after", "1", "--out", str(out)]
    assert grow.main([*argv, "--size", "40"]) == 0
    big = RegressorNet.from_pretrained(out)
    assert big.config.channels == (16, 16, 32, 32) and big.config.strides == (2, 2, 1)
    assert big.config.size == 40
    assert big.config.hidden == 32
    assert grow.main(["--init", str(tmp_path / "nope"), "--out", str(tmp_path / "h")]) == 2
    assert "regressor checkpoint file missing" in capsys.readouterr().err
    for argv, message in (
        (["--width", "0.5"], "--width: 0.5 is outside [1, 8]"),
        (["--extra-after", "1,x"], "--extra-after: expected an integer, got 'x'"),
        (["--extra-after", "7"], "stage indices are 0..1, got [7]"),
        (["--out", str(tmp_path / "w")], "--out: is the --init folder"),
    ):
        with pytest.raises(SystemExit) as exc:
            grow.main(["--init", str(tmp_path / "w"), "--out", str(tmp_path / "k"), *argv])
        assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "k").exists()


def test_face_free_images_the_benchmarks_share():
    """face3d.eval.face_free (bench_detect, bench_confidence, confidence_figure): each skimage
    image and two half-size crops, RGB uint8, the crops fixed by the seed."""
    from face3d.eval.face_free import NO_FACE, no_face_images

    images = list(no_face_images())
    assert len(images) == 3 * len(NO_FACE) == 57
    assert len({name for name, _ in images}) == len(images)
    for name, im in images:
        assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 and im.flags.c_contiguous, name
    whole, crop = dict(images)["coins"], dict(images)["coins_crop0"]
    assert crop.shape[:2] == (whole.shape[0] // 2, whole.shape[1] // 2)
    again = dict(no_face_images(seed=0))
    assert all(np.array_equal(im, again[name]) for name, im in images)


def test_compare_paired_differences_per_bin(tmp_path):
    """base - other over the rows both methods have, per |yaw| bin, with an interval; a missing
    run folder is a one-line error, exit 2."""
    paired = _script("bench/compare_paired")
    rows = []
    for i, yaw in enumerate((5.0, 10.0, 45.0)):
        for m, gain in (("3d", 0.3 + i * 0.01), ("2d", 0.1)):
            rows.append({"input": f"inputs/{i}.png", "target": "happy", "method": m, "yaw": yaw,
                         "p_target_gain": gain, "identity_distance": 0.4 if m == "3d" else 0.3})  # fmt: skip
    lone = {"input": "inputs/9.png", "target": "happy", "method": "3d", "yaw": 70.0, "p_target_gain": 1.0}
    rows.append(lone)
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "a.json").write_text(json.dumps(rows))
    out = paired.paired(tmp_path, "3d", metrics=("p_target_gain", "identity_distance"))
    front = out["2d"]["p_target_gain"]["[0,30)"]
    assert front["n"] == 2 and front["mean"] == pytest.approx(0.205)
    assert front["low"] <= front["mean"] <= front["high"]
    assert out["2d"]["p_target_gain"]["[30,60)"]["mean"] == pytest.approx(0.22)
    assert out["2d"]["p_target_gain"]["[60,90]"]["n"] == 0  # the unpaired row counts nowhere
    assert out["2d"]["identity_distance"]["all"]["mean"] == pytest.approx(0.1)
    assert "| 2d | p_target_gain | +0.205" in paired.markdown(out, "3d")
    assert paired.main([str(tmp_path / "nope"), "--out", str(tmp_path / "p.json")]) == 2
