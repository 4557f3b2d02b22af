"""The landmark/3DMM regressor: checkpoints, the inference API, and the shipped weights on
held-out synthetic renders (skipped when the weights, the ICT model or LFW are absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from face3d.crop import crop_box, crop_transform
from face3d.regress.infer import LandmarkRegressor, landmark_box_from_detector_box
from face3d.regress.network import (
    RegressorConfig,
    RegressorNet,
    RegressorWeightsError,
    default_weights_dir,
    normalise,
)

TINY = RegressorConfig(size=32, channels=(8, 8, 16), strides=(2, 2), hidden=16, n_identity=4)


def _tiny_net(seed: int = 0) -> RegressorNet:
    torch.manual_seed(seed)
    net = RegressorNet(TINY, torch.randn(68, 3), torch.randn(4, 68, 3), torch.randn(53, 68, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        net.upright.weight.zero_()  # a silent upright head: the upright search stays off
        net.upright.bias.zero_()
    return net.eval()


@pytest.fixture(scope="module")
def shipped():
    if not (default_weights_dir() / "weights.pt").is_file():
        pytest.skip("shipped regressor weights (assets/regressor) not available")
    return LandmarkRegressor.from_pretrained()


def test_save_load_roundtrip(tmp_path):
    net = _tiny_net()
    net.save_pretrained(tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} == {"config.json", "weights.pt"}
    back = RegressorNet.from_pretrained(tmp_path / "ckpt")
    assert back.config == net.config
    x = normalise(torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8))
    with torch.no_grad():
        a, b = net(x), back(x)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_landmark_offset_round_trips_and_old_checkpoints_load_with_zero(tmp_path):
    net = _tiny_net()
    with torch.no_grad():
        net.lm_offset.copy_(torch.randn(68, 3))
    net.save_pretrained(tmp_path / "ckpt")
    assert torch.equal(RegressorNet.from_pretrained(tmp_path / "ckpt").lm_offset, net.lm_offset)
    state = torch.load(tmp_path / "ckpt" / "weights.pt", weights_only=True)
    del state["lm_offset"]  # a checkpoint written before the landmark convention existed
    torch.save(state, tmp_path / "ckpt" / "weights.pt")
    old = RegressorNet.from_pretrained(tmp_path / "ckpt")
    assert torch.equal(old.lm_offset, torch.zeros(68, 3))
    out = LandmarkRegressor(old).predict(np.zeros((64, 64, 3), np.uint8), (10, 10, 50, 50))
    assert np.array_equal(out.landmark_offset, np.zeros((68, 3)))


def test_missing_or_corrupt_checkpoint_names_the_file(tmp_path):
    with pytest.raises(RegressorWeightsError, match="config.json"):
        RegressorNet.from_pretrained(tmp_path)
    _tiny_net().save_pretrained(tmp_path)
    (tmp_path / "weights.pt").write_bytes(b"not a torch file")
    with pytest.raises(RegressorWeightsError, match="weights.pt"):
        RegressorNet.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(RegressorWeightsError, match="config.json"):
        RegressorNet.from_pretrained(tmp_path)


def test_predict_shapes():
    reg = LandmarkRegressor(_tiny_net())
    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    out = reg.predict(image, (40, 30, 100, 95))
    assert out.landmarks.shape == (68, 2) and np.isfinite(out.landmarks).all()
    assert out.identity.shape == (4,) and out.expression.shape == (53,)
    assert out.rotation.shape == (3, 3) and out.centre.shape == (2,)
    assert 0.0 <= out.confidence <= 1.0 and ((out.expression >= 0) & (out.expression <= 1)).all()
    assert all(isinstance(v, float) for v in (out.yaw, out.pitch, out.roll, out.scale))
    many = reg.predict_batch(image, [(40, 30, 100, 95), (0, 0, 50, 50)])
    assert len(many) == 2 and np.allclose(many[0].landmarks, out.landmarks, atol=1e-4)
    assert reg.predict_batch(image, []) == []


def test_landmarks_map_back_to_image_pixels():
    """Crop-pixel landmarks come back to the image through the inverse crop transform."""
    reg = LandmarkRegressor(_tiny_net())
    image = np.zeros((100, 100, 3), np.uint8)
    box = (20.0, 30.0, 60.0, 80.0)
    out = reg.predict(image, box)
    A = crop_transform(*crop_box(box, TINY.crop_scale), TINY.size)
    with torch.no_grad():
        crop_lm = reg.net(normalise(torch.from_numpy(reg.crops(image, [box])[0])))["landmarks"][0].numpy()
    assert np.allclose(out.landmarks @ A[:, :2].T + A[:, 2], crop_lm, atol=1e-3)


def test_detector_box_inverse_mapping():
    from face3d.detect import dlib_box_from_landmark_box

    box = (100.0, 120.0, 180.0, 230.0)
    assert np.allclose(landmark_box_from_detector_box(dlib_box_from_landmark_box(box)), box, atol=1e-6)


def test_no_face_low_confidence(shipped):
    rng = np.random.default_rng(1)
    S = 200
    grad = np.repeat(np.linspace(0, 255, S)[None, :, None], S, 0).repeat(3, 2).astype(np.uint8)
    images = [
        np.full((S, S, 3), 128, np.uint8),
        rng.integers(0, 256, (S, S, 3), dtype=np.uint8),
        grad,
    ]
    for image in images:
        assert shipped.predict(image, (50, 50, 150, 150)).confidence < 0.5


@pytest.fixture(scope="module")
def heldout():
    """Renders of held-out LFW persons (never trained on) with their ground truth."""
    path = default_weights_dir() / "heldout_renders.npz"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def test_heldout_renders(shipped, heldout):
    """On held-out renders (yaw up to 90, pitch and roll up to 30 degrees) the median absolute
    yaw, pitch and roll errors are each < 5 degrees; faces and crops without one separate."""
    from face3d.camera import euler_degrees

    with torch.no_grad():
        out = shipped.net(normalise(torch.from_numpy(heldout["image"])))
    face = heldout["label"] > 0
    err = (euler_degrees(out["rotation"][face]) - torch.from_numpy(heldout["euler"][face])).abs()
    err = torch.minimum(err, 360 - err)
    assert (err.median(0).values < 5.0).all(), err.median(0).values
    R_gt = torch.from_numpy(heldout["rotation"][face])
    cos = ((out["rotation"][face].transpose(1, 2) @ R_gt).diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2
    geodesic = torch.rad2deg(torch.acos(cos.clamp(-1, 1)))
    assert float(geodesic.median()) < 12.0, geodesic
    conf = torch.sigmoid(out["logit"]).numpy()
    assert np.median(conf[face]) > 0.5 and np.median(conf[~face]) < 0.5
    assert (conf[face] > 0.5).mean() > 0.9 and (conf[~face] < 0.5).mean() > 0.7


def test_scale_augmentation_averages_in_image_space_and_keeps_mirror_equivariance():
    image = np.random.default_rng(4).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    W, box = image.shape[1], (30.0, 20.0, 70.0, 75.0)
    net = _tiny_net()
    one = LandmarkRegressor(net).predict(image, box)
    same = LandmarkRegressor(net, scales=(1.0, 1.0)).predict(image, box)  # two equal crops: their mean
    assert np.allclose(one.landmarks, same.landmarks, atol=1e-4) and abs(one.yaw - same.yaw) < 1e-3
    parts = [LandmarkRegressor(net, scales=(s,)).predict(image, box) for s in (0.9, 1.1)]
    both = LandmarkRegressor(net, scales=(0.9, 1.1)).predict(image, box)
    assert np.allclose(both.landmarks, 0.5 * (parts[0].landmarks + parts[1].landmarks), atol=1e-4)
    assert np.allclose(both.centre, 0.5 * (parts[0].centre + parts[1].centre), atol=1e-4)
    assert np.allclose(both.expression, 0.5 * (parts[0].expression + parts[1].expression), atol=1e-6)
    assert np.allclose(both.rotation @ both.rotation.T, np.eye(3), atol=1e-6)  # still a rotation
    from face3d.regress.network import MIRROR_68

    reg = LandmarkRegressor(net, flip=True, scales=(0.9, 1.0, 1.1))
    a = reg.predict(image, box)
    b = reg.predict(np.ascontiguousarray(image[:, ::-1]), (W - 1 - box[2], box[1], W - 1 - box[0], box[3]))
    assert np.allclose(b.landmarks, a.landmarks[list(MIRROR_68)] * [-1, 1] + [W - 1, 0], atol=0.05)
    with pytest.raises(ValueError, match="scales"):
        LandmarkRegressor(net, scales=(1.0, 0.0))


def test_flip_augmentation_is_mirror_equivariant():
    """With ``flip=True`` the prediction for a mirrored image is the mirrored prediction."""
    from face3d.regress.network import MIRROR_68

    reg = LandmarkRegressor(_tiny_net(), flip=True)
    image = np.random.default_rng(2).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    W = image.shape[1]
    box = (30.0, 20.0, 70.0, 75.0)
    a = reg.predict(image, box)
    b = reg.predict(np.ascontiguousarray(image[:, ::-1]), (W - 1 - box[2], box[1], W - 1 - box[0], box[3]))
    mirrored = a.landmarks[list(MIRROR_68)] * [-1, 1] + [W - 1, 0]
    assert np.allclose(b.landmarks, mirrored, atol=0.05)
    assert abs(a.yaw + b.yaw) < 0.1 and abs(a.confidence - b.confidence) < 1e-3


# ------------------------------------------------------------------ face3d train regressor
def test_train_cli_bad_data_is_one_line_exit_2(tmp_path, capsys):
    from face3d.cli import main

    code = main(["train", "regressor", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "nowhere" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # failed before writing anything
    (tmp_path / "empty").mkdir()
    code = main(["train", "regressor", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "no photos" in err and len(err.strip().splitlines()) == 1
    args = [
        "train",
        "regressor",
        "--data",
        str(tmp_path / "empty"),
        "--out",
        str(tmp_path / "r"),
        "--epochs",
        "0",
    ]
    assert main(args) == 2 and "--epochs must be positive" in capsys.readouterr().err
    args = ["train", "regressor", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "s")]
    assert main([*args, "--size", "8"]) == 2
    assert "--size must be in [32, 512] pixels, got 8" in capsys.readouterr().err
    assert not (tmp_path / "s" / "data").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_train_cli_tiny_run_writes_reloadable_weights(tmp_path, ict_model, capsys):
    """Two LFW photos -> synthetic shards -> one epoch (one step): a checkpoint, a log and a
    pretrained folder that rebuilds the network; --resume then trains no further step."""
    import shutil

    from face3d.cli import main

    lfw = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lfw"
    if not lfw.is_dir():
        pytest.skip("../shared/data/lfw not available")
    photos = tmp_path / "photos"
    photos.mkdir()
    for src in sorted(lfw.glob("Aaron_*/*.jpg"))[:2]:  # a flat folder of photos
        shutil.copy(src, photos / src.name)
    run = tmp_path / "run"
    args = ["train", "regressor", "--data", str(photos), "--out", str(run), "--epochs", "1", "--seed", "3"]
    assert main([*args, "--size", "64"]) == 0  # the fresh network takes the renders' crop size
    shards = list((run / "data").glob("shard_*.npz"))
    assert len(shards) == 1 and np.load(shards[0])["image"].shape[1:] == (64, 64, 3)
    assert (run / "checkpoint.pt").is_file() and (run / "log.csv").is_file()
    net = RegressorNet.from_pretrained(run / "final")
    assert net.config == RegressorConfig(size=64)
    assert torch.equal(net.lm_template, ict_model.template[ict_model.landmark_ids].float())
    ck = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 1
    capsys.readouterr()
    assert main([*args, "--size", "64", "--resume"]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 1
