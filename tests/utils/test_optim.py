"""``build_adamw``: the fused AdamW kernel on CPU parameters, with AdamW's arithmetic
(one step equals the loop implementation's to float rounding), parameter groups kept."""
from __future__ import annotations

import torch

from dama_det.utils.optim import build_adamw


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16),
                               torch.nn.Linear(16, 4))


def _groups(model):
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}]


def test_cpu_parameters_get_the_fused_kernel_with_adamw_arithmetic():
    fused_model, loop_model = _model(), _model()
    fused = build_adamw(_groups(fused_model), lr=1e-2, betas=(0.9, 0.95))
    loop = torch.optim.AdamW(_groups(loop_model), lr=1e-2, betas=(0.9, 0.95))
    assert fused.defaults["fused"] is True and not loop.defaults["fused"]
    assert [g["weight_decay"] for g in fused.param_groups] == [0.05, 0.0]
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    for _ in range(5):
        for model, opt in ((fused_model, fused), (loop_model, loop)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for a, b in zip(fused_model.parameters(), loop_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # the parameters really moved (a step that did nothing would also be "close")
    assert not torch.allclose(next(fused_model.parameters()), next(_model().parameters()))


def test_devices_without_a_fused_kernel_use_the_loop_version():
    params = [torch.nn.Parameter(torch.zeros(3, device="meta"))]
    assert not build_adamw(params, lr=1e-3).defaults["fused"]
