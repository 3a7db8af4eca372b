"""``dama-det pretrain --amp auto`` on CPU: bf16 autocast really used (a Linear layer's
output dtype) where the CPU has native bf16, fp32 elsewhere and with ``--amp off``."""
from __future__ import annotations

import pytest
import torch

from dama_det.cli import main
from dama_det.utils import device as device_mod
from tests.helpers.pretrain_crops import small_args, write_crops


@pytest.mark.parametrize("native, amp, dtype", [
    (True, "auto", torch.bfloat16), (False, "auto", torch.float32),
    (True, "off", torch.float32),
])
def test_pretraining_autocast_dtype(tmp_path, monkeypatch, native, amp, dtype):
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: native)
    seen: set[torch.dtype] = set()

    def record(module, inputs, output):
        if isinstance(module, torch.nn.Linear) and module.training:
            seen.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        data = write_crops(tmp_path / "crops", 4)
        assert main(["pretrain", *small_args(data, tmp_path / "run", "--epochs", "1",
                                             "--amp", amp, "--device", "cpu")]) == 0
    finally:
        handle.remove()
    assert seen == {dtype}
    assert (tmp_path / "run" / "encoder.pth").is_file()


def _block_and_norm_dtypes(model, imgs, autocast: bool) -> tuple[set, set, torch.Tensor]:
    """dtypes of every transformer block's and LayerNorm's output in one DAMA step, and
    the step's loss."""
    from timm.models.vision_transformer import Block

    blocks: set[torch.dtype] = set()
    norms: set[torch.dtype] = set()

    def record(module, inputs, output):
        if isinstance(module, Block):
            blocks.add(output.dtype)
        elif isinstance(module, torch.nn.LayerNorm):
            norms.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss, _, _ = model(imgs)
    finally:
        handle.remove()
    return blocks, norms, loss


def test_bf16_autocast_runs_the_token_stream_in_bf16():
    """Under bf16 autocast the residual stream (blocks, LayerNorms) is bf16, so no cast
    sits between the matmuls; the parameters and their gradients stay fp32 and the loss
    is fp32 and close to the fp32 step's. Without autocast everything is fp32."""
    from dama_det.pretrain.dama import DAMAPretrainer, MethodConfig
    from dama_det.pretrain.models_mae import mae_config

    torch.manual_seed(0)
    cfg = mae_config("test", img_size=32, patch_size=8, in_chans=3)
    model = DAMAPretrainer(cfg, MethodConfig(method="dama"))
    imgs = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    torch.manual_seed(2)
    blocks, norms, loss32 = _block_and_norm_dtypes(model, imgs, autocast=False)
    assert blocks == {torch.float32} and norms == {torch.float32}

    torch.manual_seed(2)  # the same masks
    blocks, norms, loss16 = _block_and_norm_dtypes(model, imgs, autocast=True)
    assert blocks == {torch.bfloat16} and norms == {torch.bfloat16}
    assert loss16.dtype == torch.float32 and torch.isfinite(loss16)
    assert loss16.item() == pytest.approx(loss32.item(), rel=0.05)
    loss16.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert grads and all(g is not None and g.dtype == torch.float32 for g in grads)
