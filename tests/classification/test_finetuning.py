"""Fine-tuning loop: learning, warm-up + cosine schedule, mixup path, CPU bf16, augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from dama_det.classification.augment import build_eval_transform, build_train_transform
from dama_det.classification.finetuning import FinetuneConfig, accuracy_percent, evaluate, finetune
from dama_det.classification.model import ViTArch, build_classifier
from dama_det.errors import DamaUserError
from dama_det.utils.distributed import DistInfo

ARCH = ViTArch(patch_size=16, embed_dim=64, depth=2, num_heads=2)
CPU = torch.device("cpu")



def separable_tensors(n_per_class=8, classes=4, chans=5, size=32):
    """Class c lights channel c (plus noise): a linearly separable problem."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n_per_class * classes, chans, size, size, generator=g) * 0.2
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x[torch.arange(len(y)), y] += 0.8
    return TensorDataset(x, y)


def quick_cfg(**kw):
    base = dict(epochs=12, warmup_epochs=1, batch_size=8, lr=2e-3, min_lr=1e-5,
                drop_path=0.0, mixup=0.0, cutmix=0.0, smoothing=0.0, reprob=0.0, workers=0)
    base.update(kw)
    return FinetuneConfig(**base)


def test_finetune_learns_and_follows_warmup_cosine():
    ds = separable_tensors()
    model = build_classifier(ARCH, img_size=32, in_chans=5, num_classes=4)
    cfg = quick_cfg(warmup_epochs=3)
    log = finetune(model, ds, 4, cfg, device=CPU, amp_dtype=None, dist_info=DistInfo(),
                   show_progress=False)
    assert len(log.loss) == len(log.lr) == 12 and log.batch_size == 8
    assert log.loss[-1] < 0.5 * log.loss[0]
    peak = int(np.argmax(log.lr))
    assert log.lr[0] < log.lr[1] < log.lr[peak] <= 2e-3 + 1e-12  # warm-up to the top-layer lr
    assert all(a >= b for a, b in zip(log.lr[peak:], log.lr[peak + 1:]))  # then cosine down
    assert log.lr[-1] < 0.1 * log.lr[peak]
    conf = evaluate(model, ds, 4, device=CPU, amp_dtype=None, dist_info=DistInfo())
    assert conf.shape == (4, 4) and conf.sum() == len(ds)
    assert accuracy_percent(conf) > 60.0


def test_mixup_cutmix_smoothing_and_bf16_autocast_run():
    ds = separable_tensors(n_per_class=5)  # 20 samples, batch 7 -> trimmed to an even 6
    model = build_classifier(ARCH, img_size=32, in_chans=5, num_classes=4, drop_path=0.1)
    cfg = quick_cfg(epochs=2, batch_size=7, mixup=0.8, cutmix=1.0, smoothing=0.1)
    log = finetune(model, ds, 4, cfg, device=CPU, amp_dtype=torch.bfloat16,
                   dist_info=DistInfo(), show_progress=False)
    assert log.batch_size == 6 and all(np.isfinite(log.loss))
    conf = evaluate(model, ds, 4, device=CPU, amp_dtype=torch.bfloat16, dist_info=DistInfo())
    assert conf.sum() == 20


def test_too_few_samples_for_a_mixup_batch():
    ds = separable_tensors(n_per_class=1, classes=1)
    model = build_classifier(ARCH, img_size=32, in_chans=5, num_classes=2)
    with pytest.raises(DamaUserError, match="too few for one batch"):
        finetune(model, ds, 2, quick_cfg(mixup=0.8), device=CPU, amp_dtype=None,
                 dist_info=DistInfo(), show_progress=False)


def test_random_erasing_and_crops_work_on_seven_channels():
    x = torch.rand(7, 128, 128) + 1.0  # no zeros before erasing
    tf = build_train_transform(64, crop_scale=(0.5, 1.0), reprob=1.0, remode="const")
    out = tf(x.clone())
    assert out.shape == (7, 64, 64)
    erased = (out == 0)
    assert erased.any()
    # the erased rectangle covers every channel at the same pixels
    assert torch.equal(erased.all(dim=0), erased.any(dim=0))
    rows, cols = torch.nonzero(erased[0], as_tuple=True)
    box = erased[0, rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert box.all()
    for remode in ("rand", "pixel"):
        assert build_train_transform(32, reprob=1.0, remode=remode)(x.clone()).shape == (7, 32, 32)
    assert build_eval_transform(64)(x).shape == (7, 64, 64)
    assert torch.equal(build_eval_transform(128)(x), x)


def test_default_training_crop_keeps_the_labelled_cell_at_the_centre():
    """A cell-centred crop (marker channel 2 bright over the central 16 x 16 px): the
    default crop (the whole crop, flips only) keeps the cell under the centre in every
    draw; the paper's RandomResizedCrop(0.08-1) loses it in most (E42's reason)."""
    cell = torch.zeros(7, 128, 128)
    cell[2, 56:72, 56:72] = 1.0

    def centred(tf) -> float:
        torch.manual_seed(0)
        return sum(float(tf(cell)[2, 60:68, 60:68].mean()) > 0.5 for _ in range(100)) / 100

    default = build_train_transform(128, reprob=0)
    assert centred(default) == 1.0
    torch.manual_seed(1)
    assert all(torch.equal(default(cell), cell) for _ in range(10))  # symmetric cell: flips only
    assert centred(build_train_transform(128, crop_scale=(0.08, 1.0), reprob=0)) < 0.5
