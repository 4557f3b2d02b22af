"""face3d.fit.adam.Adam: torch.optim.Adam's iterates bit for bit, without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from face3d.fit.adam import Adam


def _run(make, steps: int = 40):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(5, 3, generator=gen, requires_grad=True)
    b = torch.randn(7, generator=gen, requires_grad=True)
    target = torch.randn(5, 3, generator=gen)
    opt = make([{"params": [a], "lr": 0.05}, {"params": [b]}])
    for k in range(steps):
        loss = ((a - target) ** 2).sum() + (b.sin() ** 2).sum() * (1 + k % 3)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if k == 3:
            b.grad = None  # a parameter without a gradient this step is left alone
        opt.step()
        opt.param_groups[1]["lr"] = 0.02 * 0.97**k  # a decaying rate, changed between steps
    return a.detach(), b.detach()


def test_iterates_equal_torch_optim_adam_bit_for_bit():
    ours = _run(lambda groups: Adam(groups, lr=0.01))
    reference = _run(lambda groups: torch.optim.Adam(groups, lr=0.01))
    assert torch.equal(ours[0], reference[0]) and torch.equal(ours[1], reference[1])
    assert not torch.equal(ours[0], _run(lambda groups: Adam(groups, lr=0.01), steps=39)[0])  # it moves


def test_a_plain_parameter_list_and_an_empty_one():
    p = torch.zeros(2, requires_grad=True)
    opt = Adam([p], lr=0.1)
    (p - 1).pow(2).sum().backward()
    opt.step()
    assert torch.allclose(p.detach(), torch.full((2,), 0.1))  # Adam's first step: lr times the sign
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])


def test_stepping_imports_no_dynamo():
    code = (
        "import sys, torch\n"
        "from face3d.fit.adam import Adam\n"
        "p = torch.zeros(2, requires_grad=True); o = Adam([p]); p.sum().backward(); o.step()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
