"""Distilling a teacher flow into the deformation generator, on a tiny synthetic cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from editing.gan.checkpoint import load_generators
from editing.gan.networks import GeneratorConfig
from editing.train.flow_cache import FlowDataConfig
from editing.train.flow_distill import DistillConfig, distill
from editing.train.runlog import read_losses
from face3d.errors import InputError

K = 53


def tiny_flow_cache(n: int = 20, size: int = 32, fs: int = 16, seed: int = 0):
    """Blobs whose teacher flow is a shift set by two target weights (x by weight 0, y by weight 1)
    inside a central mask."""
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    photo = (255 * (0.5 + 0.4 * np.sin(5 * xx + 3 * yy))[None, ..., None] * np.ones((n, 1, 1, 3))).astype(
        np.uint8
    )
    y_src = np.zeros((n, K), np.float32)
    y_tgt = np.zeros((n, 2, K), np.float32)
    y_tgt[..., :2] = rng.uniform(0, 1, (n, 2, 2))
    flow = np.zeros((n, 2, fs, fs, 2), np.float32)
    flow[..., 0] = 0.1 * y_tgt[:, :, 0, None, None]
    flow[..., 1] = -0.1 * y_tgt[:, :, 1, None, None]
    mask = np.zeros((n, size, size), np.uint8)
    mask[:, size // 4 : -size // 4, size // 4 : -size // 4] = 255
    flow *= mask[:, None, ::2, ::2, None] > 0
    return SimpleNamespace(
        photo=photo,
        y_src=y_src,
        y_tgt=y_tgt,
        flow=flow.astype(np.float16),
        mask=mask,
        config=FlowDataConfig(size=size, flow_size=fs),
    )


def tiny_config(**kw) -> DistillConfig:
    deform = GeneratorConfig(
        kind="deform", base=8, n_down=2, n_res=1, cond=8, max_flow=0.25, flow_stride=2, film=True
    )
    base = dict(
        steps=40,
        batch_size=8,
        lr=1e-2,
        holdout=4,
        n_samples=2,
        log_every=5,
        sample_every=20,
        checkpoint_every=10,
        deform=deform,
    )
    return DistillConfig(**{**base, **kw})


def test_a_tiny_seeded_run_lowers_its_flow_loss(tmp_path):
    torch.manual_seed(0)
    cache = tiny_flow_cache()
    s = distill(cache, tmp_path / "run", tiny_config())
    assert (s.first_step, s.last_step) == (0, 40) and s.images_per_second > 0
    _, losses = read_losses(tmp_path / "run" / "losses.csv")
    assert losses["train"][-3:].mean() < 0.8 * losses["train"][:2].mean()
    assert losses["heldout"][-2:].mean() < 0.7 * losses["heldout"][0]
    assert (tmp_path / "run" / "samples" / "step_000040.png").is_file()
    bundle = load_generators(tmp_path / "run" / "generator")  # the shippable 2D bundle
    assert bundle.kind == "2d" and bundle.deform.config.flow_stride == 2
    assert bundle.meta["step"] == 40 and bundle.meta["crop_scale"] == cache.config.scale


def test_resume_continues_where_it_stopped(tmp_path):
    cache = tiny_flow_cache()
    distill(cache, tmp_path / "a", tiny_config(steps=20))
    s = distill(cache, tmp_path / "a", tiny_config(steps=30), resume=True)
    assert (s.first_step, s.last_step) == (20, 30)
    ref = distill(cache, tmp_path / "b", tiny_config(steps=30))
    a, b = (
        torch.load(p / "checkpoint.pt", weights_only=True)["deform"] for p in (tmp_path / "a", tmp_path / "b")
    )
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)  # the same batches, the same weights
    assert ref.last_step == 30
    with pytest.raises(InputError):
        distill(cache, tmp_path / "a", tiny_config(steps=30))  # not empty, no resume
    with pytest.raises(InputError):
        distill(cache, tmp_path / "a", tiny_config(steps=40, lr=5e-2), resume=True)  # another config


def test_zero_source_and_init_from_a_bundle(tmp_path):
    """--zero-source hides the fitted source from the generator (its 2D-only inference condition);
    --init starts a new run from a saved bundle's G_def; another architecture is refused."""
    from editing.train.flow_distill import draw_batch

    cache = tiny_flow_cache()
    cache.y_src[:] = 0.3  # a fitted source the zero-source condition must hide
    b = draw_batch(cache, tiny_config(zero_source=True, same_frac=1.0), np.random.default_rng(0))
    assert not b["y_src"].any() and torch.allclose(b["y_tgt"], torch.full_like(b["y_tgt"], 0.3))
    assert not b["flow"].any()  # the target is the photo's own expression: no motion
    distill(cache, tmp_path / "a", tiny_config(steps=20))
    init = tmp_path / "a" / "generator"
    fresh = distill(cache, tmp_path / "c", tiny_config(steps=1, lr=0.0), init_from=init)
    assert fresh.first_step == 0 and fresh.last_step == 1
    a = load_generators(init).deform.state_dict()
    c = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=True)["deform"]
    assert all(torch.allclose(a[k], c[k]) for k in a)  # lr 0: still the init's weights
    other = tiny_config(deform=GeneratorConfig(kind="deform", base=4, n_down=2, n_res=1, cond=8, film=True))
    with pytest.raises(InputError, match="architecture differs"):
        distill(cache, tmp_path / "d", other, init_from=init)
