"""``--amp auto`` in prediction: on a CPU with native bf16 the model's layers really
compute in bf16 (checked on a Linear layer's output), elsewhere in fp32; the outputs
stay integer boxes, float scores and bool masks either way."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dama_det.inference.predictor import MaskRCNNTilePredictor
from dama_det.utils import device as device_mod
from tests.helpers.predict_fakes import tiny_cfg


@pytest.mark.parametrize("native, dtype", [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_amp_prediction_dtype(monkeypatch, native, dtype):
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: native)
    torch.manual_seed(0)
    pred = MaskRCNNTilePredictor.from_config(tiny_cfg(), None, device="cpu", amp="auto",
                                             score_thresh=0.0)
    seen: list[torch.dtype] = []
    linears = [m for m in pred.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears
    handle = linears[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        image = np.random.default_rng(0).random((7, 64, 64), dtype=np.float32)
        dets = pred(image)
    finally:
        handle.remove()
    assert seen and set(seen) == {dtype}
    assert dets, "the random-weight model keeps every detection at score 0"
    for det in dets[:20]:
        assert det.mask.dtype == bool and isinstance(det.score, float)
        assert 0.0 <= det.score <= 1.0
