"""Pretraining runs: the loss decreases, resume is exact, checkpoints/logs/figures and
the export are written, and DDP works on CPU with gloo."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from dama_det.encoder_export.format import load_encoder_export
from dama_det.pretrain.dama import DAMAPretrainer, MethodConfig
from dama_det.pretrain.driver import build_optimizer, run_pretraining
from dama_det.pretrain.export import export_checkpoint
from dama_det.pretrain.models_mae import mae_config
from dama_det.pretrain.options import parse_pretrain_args
from tests.helpers.pretrain_crops import blob_images, small_args, write_crops

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("method", ["dama", "mae"])
def test_fixed_batch_loss_decreases(method):
    torch.manual_seed(0)
    imgs = torch.from_numpy(blob_images(8))
    model = DAMAPretrainer(mae_config("test", img_size=32, patch_size=8),
                           MethodConfig(method=method, mask_ratio=0.75))
    opt = build_optimizer(model, 0.05)
    for group in opt.param_groups:
        group["lr"] = 2e-3
    history = []
    for _ in range(50):
        loss, terms, _ = model(imgs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({"loss": loss.item(), **{k: v.item() for k, v in terms.items()}})
    for key in ("loss", "recon1", "recon2") if method == "dama" else ("loss",):
        first = np.mean([h[key] for h in history[:10]])
        last = np.mean([h[key] for h in history[-10:]])
        assert last < 0.85 * first, (key, first, last)


def _tensors(obj, prefix=""):
    """Flatten nested dict/list state into {path: tensor}."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}/{i}")


def test_resume_reproduces_uninterrupted_run_exactly(tmp_path):
    data = write_crops(tmp_path / "crops", 8)
    extra = ("--accum-iter", "2", "--method", "dama")
    full = run_pretraining(parse_pretrain_args(
        small_args(data, tmp_path / "full", "--epochs", "4", *extra)))
    first = run_pretraining(parse_pretrain_args(
        small_args(data, tmp_path / "split", "--epochs", "4", "--stop-after-epoch", "2", *extra)))
    assert first["epochs_run"] == 2
    resumed = run_pretraining(parse_pretrain_args(
        small_args(data, tmp_path / "split", "--epochs", "4", "--resume", "auto", *extra)))
    assert full["epochs_run"] == 4 and resumed["epochs_run"] == 2
    a = torch.load(tmp_path / "full" / "checkpoint-last.pth", weights_only=False)
    b = torch.load(tmp_path / "split" / "checkpoint-last.pth", weights_only=False)
    assert a["epoch"] == b["epoch"] == 3
    for part in ("model", "optimizer", "rng"):
        ta, tb = dict(_tensors(a[part])), dict(_tensors(b[part]))
        assert ta.keys() == tb.keys() and ta
        for key in ta:
            assert torch.equal(ta[key], tb[key]), f"{part}{key} differs after resume"
    # the per-epoch log lines match too (losses of epochs 3 and 4)
    log_a = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log_a] == [r["loss"] for r in log_b]


def test_run_writes_checkpoints_logs_figure_and_export(tmp_path):
    data = write_crops(tmp_path / "crops", 6)
    out = tmp_path / "run"
    args = small_args(data, out, "--epochs", "2", "--save-every", "1", "--vis-every", "2",
                      "--method", "dama-ema", "--num-workers", "1")
    result = run_pretraining(parse_pretrain_args(args))
    for name in ("checkpoint-last.pth", "checkpoint-best.pth", "checkpoint-0001.pth",
                 "checkpoint-0002.pth", "encoder.pth", "figures/epoch_0002.png"):
        assert (out / name).is_file(), name
    assert (out / "figures" / "epoch_0002.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert {"loss", "recon1", "recon2", "regression", "lr", "images_per_s"} <= lines[0].keys()
    assert lines[0]["images"] == 6.0
    assert result["export"] == out / "encoder.pth"

    # export from a checkpoint, as `dama-det export` does; loads into timm's ViT
    exported = export_checkpoint(out / "checkpoint-0001.pth", tmp_path / "enc.pth")
    meta = load_encoder_export(exported)
    assert (meta["img_size"], meta["patch_size"], meta["in_chans"], meta["epoch"]) == (32, 8, 7, 1)
    assert meta["method"] == "dama-ema" and meta["channel_names"] == [f"ch{c}" for c in range(7)]
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, in_chans=7, embed_dim=64, depth=2, num_heads=2, num_classes=0)
    assert not vit.load_state_dict(meta["model"], strict=True).missing_keys
    ckpt = torch.load(out / "checkpoint-0001.pth", weights_only=False)
    assert torch.equal(meta["model"]["blocks.0.attn.qkv.weight"],
                       ckpt["model"]["student1.blocks.0.attn.qkv.weight"])


@pytest.mark.slow
def test_two_process_gloo_ddp_run(tmp_path):
    data = write_crops(tmp_path / "crops", 8)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "dama_det", "pretrain",
           *small_args(data, out, "--epochs", "2", "--dist-backend", "gloo")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["images"] for r in lines] == [8.0, 8.0]  # 2 processes x 2 batches x 2 images
    assert proc.stdout.count("epoch 1/2") == 1  # only rank 0 logs
    assert load_encoder_export(out / "encoder.pth")["in_chans"] == 7


def test_cosine_schedule_with_per_iteration_warmup():
    from dama_det.pretrain.epoch_loop import cosine_lr

    kw = dict(base_lr=1e-3, min_lr=1e-5, warmup_epochs=2, epochs=10)
    assert cosine_lr(0.0, **kw) == 0.0
    assert cosine_lr(0.5, **kw) == pytest.approx(2.5e-4)  # linear inside the first epoch too
    assert cosine_lr(2.0, **kw) == pytest.approx(1e-3)
    # half-way down the cosine
    assert cosine_lr(6.0, **kw) == pytest.approx(1e-5 + (1e-3 - 1e-5) / 2)
    assert cosine_lr(10.0, **kw) == pytest.approx(1e-5)
    values = [cosine_lr(e / 10, **kw) for e in range(20, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_lr_scales_with_effective_batch(tmp_path, capsys):
    data = write_crops(tmp_path / "crops", 4)
    args = small_args(data, tmp_path / "o", "--epochs", "1", "--method", "mae")
    i = args.index("--lr")
    del args[i:i + 2]
    run_pretraining(parse_pretrain_args(args + ["--blr", "0.256", "--accum-iter", "2"]))
    assert "lr 0.004 (effective batch 4)" in capsys.readouterr().out  # 0.256 * 2 * 2 / 256
