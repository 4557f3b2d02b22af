"""The AFLW fine-tune of the regressor (tiny network, tiny synthetic shards and images; seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from face3d.eval.aflw_crops import AFLWCrops, AugConfig
from face3d.regress.network import RegressorConfig, RegressorNet
from face3d.train.finetune import FinetuneConfig, finetune
from tests.eval.test_aflw_crops import _samples  # the sibling module (pytest puts this folder on sys.path)


def _tiny_shards(folder: Path, rng, n: int = 24, size: int = 32) -> None:
    """A synthetic-shard folder in the ``regressor_data`` layout (random crops and labels)."""
    from face3d.io import atomic_write_npz

    folder.mkdir()
    for k in range(2):
        R = np.linalg.qr(rng.normal(size=(n, 3, 3)))[0]
        R = R * np.sign(np.linalg.det(R))[:, None, None]
        atomic_write_npz(
            folder / f"shard_{k:05d}.npz",
            image=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
            landmarks=rng.uniform(4, size - 4, (n, 68, 2)).astype(np.float32),
            rotation=R.astype(np.float32),
            centre=rng.uniform(12, 20, (n, 2)).astype(np.float32),
            scale=rng.uniform(1, 2, n).astype(np.float32),
            identity=rng.normal(size=(n, 4)).astype(np.float32),
            expression=rng.uniform(0, 1, (n, 53)).astype(np.float32),
            label=(rng.random(n) < 0.8).astype(np.float32),
        )


def test_finetune_calibrates_the_offset_writes_and_resumes(tmp_path):
    """A few seconds of fine-tuning a tiny network: the landmark-convention offset is calibrated
    (symmetric, non-zero) before training and saved with the weights; ``--resume`` keeps it; the
    run's augmentation is the config's, the caller's crops are left as they were."""
    from face3d.train.convention import symmetrise_offset

    rng = np.random.default_rng(5)
    cfg = RegressorConfig(size=32, channels=(8, 8, 16), strides=(2, 2), hidden=16, n_identity=4)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    template = torch.randn(68, 3, generator=g) * 5
    init = RegressorNet(
        cfg, template, torch.randn(4, 68, 3, generator=g) * 0.1, torch.randn(53, 68, 3) * 0.01
    )
    init.save_pretrained(tmp_path / "init")
    _tiny_shards(tmp_path / "shards", rng)
    samples = _samples(12, rng)
    images = [rng.integers(0, 256, (220, 240, 3), dtype=np.uint8) for _ in samples]
    aflw = AFLWCrops(samples, 32, 1.5, AugConfig(), images=images)
    config = FinetuneConfig(
        minutes=0.03, aflw_batch=4, synthetic_batch=4, checkpoint_minutes=10, aug=AugConfig(rotation=30.0)
    )
    net = finetune(aflw, tmp_path / "shards", tmp_path / "run", tmp_path / "init", config, progress=False)
    offset = net.lm_offset.clone()
    assert float(offset.abs().max()) > 0.1
    assert bool(net.upright.weight.ne(0).any())  # turned crops trained the upright head
    assert torch.allclose(symmetrise_offset(offset), offset, atol=1e-6)
    assert aflw.aug == AugConfig()  # the caller's crops are not changed
    back = RegressorNet.from_pretrained(tmp_path / "run" / "final")
    assert torch.equal(back.lm_offset, offset)
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    resumed = finetune(
        aflw, tmp_path / "shards", tmp_path / "run", tmp_path / "init", config, resume=True, progress=False
    )
    assert torch.equal(resumed.lm_offset, offset)  # resuming does not re-calibrate
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["step"] == ck["step"]


def test_finetune_adds_the_training_shards_of_extra_synthetic_folders(tmp_path):
    """``synthetic_dir`` as a list: the first folder's validation split stays, the others' shards
    join its training shards (the run records the counts)."""
    import json

    rng = np.random.default_rng(6)
    cfg = RegressorConfig(size=32, channels=(8, 8, 16), strides=(2, 2), hidden=16, n_identity=4)
    RegressorNet(cfg).save_pretrained(tmp_path / "init")
    _tiny_shards(tmp_path / "a", rng)
    _tiny_shards(tmp_path / "b", rng)
    samples = _samples(6, rng)
    images = [rng.integers(0, 256, (220, 240, 3), dtype=np.uint8) for _ in samples]
    aflw = AFLWCrops(samples, 32, 1.5, AugConfig(), images=images)
    config = FinetuneConfig(
        minutes=0.01, aflw_batch=2, synthetic_batch=2, checkpoint_minutes=10, calibrate=False, upright_batch=0
    )
    dirs = [tmp_path / "a", tmp_path / "b"]
    net = finetune(aflw, dirs, tmp_path / "run", tmp_path / "init", config, progress=False)
    assert not net.upright.weight.any()  # no turned crops: the upright head stays silent
    rec = json.loads((tmp_path / "run" / "finetune_config.json").read_text())
    assert rec["synthetic"] == [str(d) for d in dirs]
    assert rec["synthetic_samples"] == [47, 48]  # 3 % of the first folder validates


def test_finetune_keeps_a_moving_average_of_the_weights(tmp_path):
    """``FinetuneConfig.ema``: ``final_ema/`` holds weights between the init and the trained ones
    (a moving average), and the checkpoint carries them so a resumed run continues the same average."""
    rng = np.random.default_rng(7)
    cfg = RegressorConfig(size=32, channels=(8, 8, 16), strides=(2, 2), hidden=16, n_identity=4)
    torch.manual_seed(1)
    init = RegressorNet(cfg)
    init.save_pretrained(tmp_path / "init")
    _tiny_shards(tmp_path / "shards", rng)
    samples = _samples(6, rng)
    images = [rng.integers(0, 256, (220, 240, 3), dtype=np.uint8) for _ in samples]
    aflw = AFLWCrops(samples, 32, 1.5, AugConfig(), images=images)
    config = FinetuneConfig(
        minutes=0.02,
        aflw_batch=2,
        synthetic_batch=2,
        checkpoint_minutes=10,
        calibrate=False,
        upright_batch=0,
        ema=0.9,
        lr=1e-2,
    )
    net = finetune(aflw, tmp_path / "shards", tmp_path / "run", tmp_path / "init", config, progress=False)
    ema = RegressorNet.from_pretrained(tmp_path / "run" / "final_ema")
    w0, w1, we = (m.fc[0].weight.detach() for m in (init, net, ema))
    assert not torch.equal(we, w1) and not torch.equal(we, w0)
    assert float((we - w0).norm()) < float((w1 - w0).norm())  # the average lags behind the weights
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert torch.equal(ck["ema"]["fc.0.weight"], we)
    (tmp_path / "run" / "final_ema" / "weights.pt").unlink()
    finetune(
        aflw, tmp_path / "shards", tmp_path / "run", tmp_path / "init", config, resume=True, progress=False
    )
    back = RegressorNet.from_pretrained(
        tmp_path / "run" / "final_ema"
    )  # the budget was spent: the same average
    assert torch.equal(back.fc[0].weight, we)
    logged = (tmp_path / "run" / "log.csv").read_text()
    assert "aflw_train_ema" in logged


def test_finetune_refuses_shards_of_another_crop_size(tmp_path):
    """Shards rendered at another size than the network's input: a one-line InputError naming the
    folder and both sizes, before any training."""
    import pytest

    from face3d.errors import InputError

    rng = np.random.default_rng(7)
    cfg = RegressorConfig(size=32, channels=(8, 8, 16), strides=(2, 2), hidden=16, n_identity=4)
    RegressorNet(cfg).save_pretrained(tmp_path / "init")
    _tiny_shards(tmp_path / "a", rng)
    _tiny_shards(tmp_path / "b", rng, size=40)
    samples = _samples(4, rng)
    images = [rng.integers(0, 256, (220, 240, 3), dtype=np.uint8) for _ in samples]
    aflw = AFLWCrops(samples, 32, 1.5, AugConfig(), images=images)
    config = FinetuneConfig(minutes=0.01, aflw_batch=2, synthetic_batch=2, calibrate=False, upright_batch=0)
    for dirs in ([tmp_path / "b"], [tmp_path / "a", tmp_path / "b"]):
        with pytest.raises(InputError, match=r"b: shards of 40 px crops for a network of 32 px input"):
            finetune(aflw, dirs, tmp_path / "run", tmp_path / "init", config, progress=False)
    assert not (tmp_path / "run" / "final").exists()
