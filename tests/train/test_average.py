"""Weight averaging of regressor networks (EMA, soup): tiny networks, no files but tmp_path."""

from __future__ import annotations

import pytest
import torch

from face3d.regress.network import RegressorConfig, RegressorNet, RegressorWeightsError
from face3d.train.average import average_state_dicts, ema_copy, ema_update, soup

CFG = RegressorConfig(size=32, channels=(8, 8, 16), strides=(2, 2), hidden=16, n_identity=4)


def _net(seed: int, cfg: RegressorConfig = CFG) -> RegressorNet:
    torch.manual_seed(seed)
    net = RegressorNet(cfg)
    with torch.no_grad():  # a trained-looking network: non-zero head, moved BatchNorm statistics
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.normal_()
            elif name.endswith("num_batches_tracked"):
                b.fill_(seed + 1)
    return net


def test_ema_update_is_the_weighted_mean_and_copies_integer_buffers():
    a, b = _net(0), _net(1)
    avg = ema_copy(a)
    ema_update(avg, b, 0.75)
    sa, sb, s = a.state_dict(), b.state_dict(), avg.state_dict()
    for k, v in s.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.75 * sa[k] + 0.25 * sb[k])
        else:
            assert torch.equal(v, sb[k])  # num_batches_tracked: the newest network's
    assert not any(p.requires_grad for p in avg.parameters()) and not avg.training
    assert torch.equal(a.state_dict()["head.weight"], sa["head.weight"])  # the sources are untouched
    ema_update(avg, b, 0.0)  # decay 0 copies
    torch.testing.assert_close(avg.state_dict()["fc.0.weight"], sb["fc.0.weight"])
    with pytest.raises(ValueError, match="decay"):
        ema_update(avg, b, 1.0)


def test_average_state_dicts_weights_and_errors():
    a, b = _net(0).state_dict(), _net(1).state_dict()
    out = average_state_dicts([a, b], [3.0, 1.0])
    torch.testing.assert_close(out["head.bias"], 0.75 * a["head.bias"] + 0.25 * b["head.bias"])
    torch.testing.assert_close(average_state_dicts([a])["fc.0.weight"], a["fc.0.weight"])
    with pytest.raises(ValueError, match="one non-negative weight"):
        average_state_dicts([a, b], [1.0])
    with pytest.raises(ValueError, match="different entries"):
        average_state_dicts([a, {k: v for k, v in b.items() if k != "head.bias"}])
    with pytest.raises(ValueError, match="at least one"):
        average_state_dicts([])


def test_soup_of_folders_averages_and_predicts_between(tmp_path):
    """A soup of two checkpoints is their mean; of one checkpoint with itself, that checkpoint
    (same outputs); checkpoints of different architectures are refused with a clear error."""
    a, b = _net(0), _net(1)
    a.save_pretrained(tmp_path / "a")
    b.save_pretrained(tmp_path / "b")
    s = soup([tmp_path / "a", tmp_path / "b"])
    torch.testing.assert_close(s.head.weight, 0.5 * (a.head.weight + b.head.weight))
    x = torch.randn(2, 3, 32, 32)
    same = soup([tmp_path / "a", tmp_path / "a"])
    torch.testing.assert_close(same(x)["landmarks"], a.eval()(x)["landmarks"])
    _net(
        2, RegressorConfig(size=32, channels=(8, 8, 8), strides=(2, 2), hidden=16, n_identity=4)
    ).save_pretrained(tmp_path / "c")
    with pytest.raises(RegressorWeightsError, match="config differs"):
        soup([tmp_path / "a", tmp_path / "c"])
