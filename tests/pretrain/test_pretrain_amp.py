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
