"""GAN networks, losses and the training loop on tiny synthetic caches (no model, no data)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from editing.gan.checkpoint import load_generators, save_generators
from editing.gan.networks import (
    DeformationGenerator,
    Discriminator,
    DiscriminatorConfig,
    GeneratorConfig,
    TextureGenerator,
    apply_attention,
    warp,
)
from editing.train.gan import TrainConfig, train
from editing.train.runlog import read_losses
from face3d.errors import Face3DError, InputError

K = 53
TINY_G = GeneratorConfig(base=8, n_down=2, n_res=1, cond=4)
TINY_D = DiscriminatorConfig(base=8, n_down=3)


def tiny_cache(n: int = 24, size: int = 32, seed: int = 0) -> SimpleNamespace:
    """Smooth colour blobs; render_src = photo with a grey hole (what the generator must fill)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    photo = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        c = rng.uniform(0.2, 0.8, 3)
        photo[i] = (255 * np.clip(c + 0.2 * np.sin(6 * xx + i)[..., None] * yy[..., None], 0, 1)).astype(
            np.uint8
        )
    hole = photo.copy()
    hole[:, size // 3 : size // 2, size // 3 : 2 * size // 3] = 128
    mask = np.zeros((n, size, size), np.uint8)
    mask[:, size // 6 : -size // 6, size // 6 : -size // 6] = 255
    return SimpleNamespace(
        photo=photo,
        y_src=rng.uniform(0, 0.3, (n, K)).astype(np.float32),
        render_src=hole,
        render_tgt=np.stack([hole, hole], 1),
        y_tgt=rng.uniform(0, 1, (n, 2, K)).astype(np.float32),
        mask=mask,
        yaw=np.zeros(n, np.float32),
    )


def tiny_config(**kw) -> TrainConfig:
    base = dict(
        steps=30,
        batch_size=4,
        holdout=4,
        n_samples=2,
        log_every=1,
        sample_every=15,
        checkpoint_every=5,
        generator=TINY_G,
        deform_generator=dataclasses.replace(TINY_G, kind="deform", flow_stride=2),
        discriminator=TINY_D,
        lr_g=2e-3,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_shapes_ranges_and_mask():
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, K)
    with torch.no_grad():
        tex, m = TextureGenerator(TINY_G)(x, y)
    assert tex.shape == (2, 3, 32, 32) and m.shape == (2, 1, 32, 32)
    assert 0 <= float(m.min()) and float(m.max()) <= 1 and 0 <= float(tex.min()) and float(tex.max()) <= 1
    out = apply_attention(x, tex, m)
    assert torch.allclose(apply_attention(x, tex, torch.ones_like(m)), x)
    assert out.shape == x.shape
    with torch.no_grad():
        flow = DeformationGenerator(dataclasses.replace(TINY_G, kind="deform"))(x, y, y)
        patch, expr = Discriminator(TINY_D)(x)
    assert flow.shape == (2, 2, 32, 32) and float(flow.abs().max()) <= TINY_G.max_flow + 1e-6
    assert patch.shape[:2] == (2, 1) and expr.shape == (2, K) and float(expr.min()) >= 0
    with pytest.raises(ValueError, match="expression must be"):
        TextureGenerator(TINY_G)(x, torch.rand(2, 7))


def test_warp_identity_and_shift():
    x = torch.rand(1, 3, 16, 16)
    assert torch.allclose(warp(x, torch.zeros(1, 2, 16, 16)), x, atol=1e-6)
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0] = 2 / 16  # sample one pixel to the right
    assert torch.allclose(warp(x, flow)[..., :-1], x[..., 1:], atol=1e-5)


def test_training_lowers_losses(tmp_path):
    kind, key = "deform", "cycle"
    torch.set_num_threads(1)
    cache = tiny_cache()
    config = tiny_config(kind=kind, steps=40)
    summary = train(cache, tmp_path / kind, config, progress=False)
    assert summary.last_step == 40
    steps, values = read_losses(tmp_path / kind / "losses.csv")
    first, last = values[key][:5].mean(), values[key][-5:].mean()
    assert last < 0.8 * first, (kind, first, last)
    assert (tmp_path / kind / "samples" / "step_000040.png").is_file()
    assert (tmp_path / kind / "losses.png").is_file()
    bundle = load_generators(tmp_path / kind / "generator")
    assert bundle.kind == "2d" and bundle.size == 32
    # a snapshot per sample grid (sample_every 15), loadable on its own, the last equal to the final
    snaps = sorted(p.name for p in (tmp_path / kind / "snapshots").iterdir())
    assert snaps == ["step_000015", "step_000030", "step_000040"]
    snap = load_generators(tmp_path / kind / "snapshots" / "step_000040")
    assert all(
        torch.equal(a, b)
        for a, b in zip(snap.texture.state_dict().values(), bundle.texture.state_dict().values(), strict=True)
    )


def test_resume_is_deterministic(tmp_path):
    torch.set_num_threads(1)
    cache = tiny_cache()
    train(cache, tmp_path / "a", tiny_config(steps=10), progress=False)
    train(cache, tmp_path / "b", tiny_config(steps=5), progress=False)
    train(cache, tmp_path / "b", tiny_config(steps=10), resume=True, progress=False)
    a = load_generators(tmp_path / "a" / "generator").texture.state_dict()
    b = load_generators(tmp_path / "b" / "generator").texture.state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    with pytest.raises(InputError, match="already holds a run"):
        train(cache, tmp_path / "a", tiny_config(steps=12), progress=False)
    with pytest.raises(InputError, match="different configuration"):
        train(cache, tmp_path / "a", tiny_config(steps=12, lr_g=1e-3), resume=True, progress=False)


def test_checkpoint_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    g, d = TextureGenerator(TINY_G), DeformationGenerator(dataclasses.replace(TINY_G, kind="deform"))
    save_generators(tmp_path / "m", g, d, size=32, meta={"note": "test"})
    bundle = load_generators(tmp_path / "m")
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, K)
    g.eval()
    with torch.no_grad():
        assert torch.equal(g(x, y)[0], bundle.texture(x, y)[0])
        assert torch.equal(d(x, y, y), bundle.deform(x, y, y))
    assert bundle.meta == {"note": "test"}
    (tmp_path / "m" / "weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Face3DError, match="weights.pt: corrupt generator weights"):
        load_generators(tmp_path / "m")
    with pytest.raises(Face3DError, match=r"none.config.json: generator checkpoint file missing"):
        load_generators(tmp_path / "none")


def test_train_command_errors_are_one_line(tmp_path, capsys):
    from face3d.cli import main

    assert main(["train", "texture", "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "none")]) == 2
    assert "holds no cycle cache" in capsys.readouterr().err
    assert main(["train", "deform", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "deform", "--out", str(tmp_path / "r"), "--steps", "-1"]) == 2


def test_standardised_expression_loss():
    from editing.train.losses import expression_loss

    pred, target = torch.zeros(2, 3), torch.tensor([[0.2, 0.0, 0.4], [0.0, 0.0, 0.0]])
    assert torch.isclose(expression_loss(pred, target), torch.tensor((0.2**2 + 0.4**2) / 6))
    scale = torch.tensor([0.1, 1.0, 0.2])
    # errors 2 and 2 standard deviations in two of six entries
    assert torch.isclose(expression_loss(pred, target, scale), torch.tensor(8.0 / 6))


def test_discriminator_warmup_learns_expressions_it_can_see():
    from editing.train.gan import Models, warmup_discriminator

    torch.manual_seed(0)
    cache = tiny_cache(n=48)
    # the "expression" is visible: weight 0 is the photo's mean brightness
    cache.y_src[:, 0] = cache.photo.reshape(48, -1).mean(1) / 255.0
    config = tiny_config(disc_warmup=150, expr_standardize=True, holdout=8, batch_size=8, lr_d=2e-3)
    models = Models(config)
    sd = np.maximum(cache.y_src[config.holdout :].std(0), 0.05)
    models.expr_scale = torch.from_numpy(sd.astype(np.float32))
    stats = warmup_discriminator(models, cache, config, progress=False)
    assert stats["holdout_after"] < 0.5 * stats["holdout_before"], stats
