"""Adam for the per-image fits (the residual, the photometric refinement, the landmark fit's Adam).

``torch.optim.Adam``'s update on the CPU (its single-tensor path: no weight decay, no AMSGrad),
bit for bit, without ``torch.optim``: its first step in a process imports ``torch._dynamo``, which
takes about 1 s, as long as a tenth of a ``face3d fit --residual`` of one photo. Training keeps
``torch.optim``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class Adam:
    """``torch.optim.Adam(params, lr, betas, eps)``: ``params`` are tensors or parameter groups
    (dicts with ``"params"`` and optionally their own ``"lr"``); ``param_groups[i]["lr"]`` may be
    changed between steps, as with ``torch.optim``."""

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        groups = list(params)
        if not groups:
            raise ValueError("Adam got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups = [{"lr": lr, **g, "params": list(g["params"])} for g in groups]
        self.betas, self.eps = betas, eps
        self.state: dict[torch.Tensor, dict] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                if p not in self.state:
                    self.state[p] = {"step": 0, "exp_avg": torch.zeros_like(p)}
                    self.state[p]["exp_avg_sq"] = torch.zeros_like(p)
                st = self.state[p]
                st["step"] += 1
                exp_avg, exp_avg_sq, grad = st["exp_avg"], st["exp_avg_sq"], p.grad
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = float(st["step"])
                bias_correction1 = 1 - beta1**step
                bias_correction2_sqrt = (1 - beta2**step) ** 0.5
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
                p.addcdiv_(exp_avg, denom, value=-(g["lr"] / bias_correction1))
