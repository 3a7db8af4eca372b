"""Does ``torch.compile`` (inductor, CPU) pay off for the ViT encoder, compile time included?

Part 1, pretraining: one DAMA training step (forward + backward + fused AdamW) of the
``--size`` ViT at batch ``--batch``, 128 x 128 x 7, in fp32 and bf16 (the product's
``autocast_context``), eagerly and with the pretrainer wrapped in ``torch.compile``.
Part 2, prediction: the detector's ViT backbone (``--detector-config``, random weights)
on one ``--window`` px window in eval mode, eagerly and with ``model.backbone`` compiled.

For each case: the compile time (first two calls minus two eager calls), the steady-state
median of ``--steps`` calls (eager and compiled taking turns, so load from other jobs falls
on both alike), the speed-up, and the break-even point (calls after which the compile time
is paid back). Writes ``--out`` (default ``benchmarks/results/compile_trial.md``).

Usage: ``python benchmarks/compile_trial.py [--size tiny] [--threads 2] [--steps 8]``
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from collect_results import publish
from detect_speed import dama_cfg
from pretrain_profile import build

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DETECTOR = REPO / "configs" / "quick_schedules" / "mask_rcnn_dama_vit_demo_cpu.yaml"
#: (label, autocast dtype) of the precisions every case runs in.
PRECISIONS = (("fp32", None), ("bf16", torch.bfloat16))


def pretrain_step(model, opt, imgs, dtype):
    """Closure: one DAMA step under the product's autocast; returns seconds."""
    from dama_det.utils import autocast_context

    def step() -> float:
        start = time.perf_counter()
        with autocast_context(torch.device("cpu"), dtype):
            loss, _, _ = model(imgs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - start
    return step


def backbone_call(backbone, image, dtype):
    """Closure: one backbone forward ``(1, C, H, W) -> pyramid`` in inference mode."""
    from dama_det.utils import autocast_context

    def call() -> float:
        start = time.perf_counter()
        with torch.inference_mode(), autocast_context(torch.device("cpu"), dtype):
            backbone(image)
        return time.perf_counter() - start
    return call


def trial(eager, compiled, steps: int) -> dict:
    """Compile time and steady-state timings of an eager / compiled pair of closures.

    A compiled closure that raises is reported (``error``: its exception's first line)
    instead of timed: a failing compile is a result of the trial too.
    """
    warm_eager = eager() + eager()
    try:
        first_two = compiled() + compiled()
    except Exception as exc:  # inductor / dynamo failures of any kind
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return {"eager": statistics.median([eager() for _ in range(steps)]),
                "error": f"{type(exc).__name__}: {first_line[:160]}"}
    t_eager, t_comp = [], []
    for _ in range(steps):
        t_eager.append(eager())
        t_comp.append(compiled())
    e, c = statistics.median(t_eager), statistics.median(t_comp)
    compile_s = max(first_two - warm_eager, 0.0)
    return {"eager": e, "compiled": c, "compile_s": compile_s,
            "break_even": compile_s / (e - c) if e > c else float("inf")}


def compile_blocks(model) -> None:
    """Compile every transformer block (encoder and decoder, both students) in place."""
    for module in model.modules():
        for name in ("blocks", "decoder_blocks"):
            for blk in getattr(module, name, None) or []:
                blk.compile()


def pretrain_cases(args) -> list[tuple[str, dict]]:
    imgs = torch.randn(args.batch, 7, 128, 128, generator=torch.Generator().manual_seed(0))
    rows = []
    for name, dtype in PRECISIONS:
        for scope in ("whole pretrainer", "each transformer block"):
            explicit = dtype == torch.bfloat16  # the product's CPU bf16 attention path
            model_e, opt_e = build(args.size, fused=True, explicit=explicit)
            model_c, opt_c = build(args.size, fused=True, explicit=explicit)
            if scope == "whole pretrainer":
                compiled = torch.compile(model_c)
            else:
                compile_blocks(model_c)
                compiled = model_c
            rows.append((f"pretraining step, {args.size} DAMA, batch {args.batch}, {name}, "
                         f"compiled: {scope}",
                         trial(pretrain_step(model_e, opt_e, imgs, dtype),
                               pretrain_step(compiled, opt_c, imgs, dtype), args.steps)))
            print(rows[-1], flush=True)
            torch._dynamo.reset()
    return rows


def backbone_cases(args) -> list[tuple[str, dict]]:
    from detectron2.modeling import build_model

    cfg = dama_cfg(args.detector_config)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    channels = len(cfg.MODEL.PIXEL_MEAN)
    image = torch.rand(1, channels, args.window, args.window,
                       generator=torch.Generator().manual_seed(0))
    rows = []
    for name, dtype in PRECISIONS:
        compiled = torch.compile(model.backbone)
        rows.append((f"detector backbone forward, `{args.detector_config.name}`, "
                     f"{args.window} px window, {name}",
                     trial(backbone_call(model.backbone, image, dtype),
                           backbone_call(compiled, image, dtype), args.steps)))
        print(rows[-1], flush=True)
        torch._dynamo.reset()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="tiny", help="pretraining model size")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--steps", type=int, default=8, help="timed calls per case")
    p.add_argument("--detector-config", type=Path, default=DETECTOR)
    p.add_argument("--window", type=int, default=256, help="prediction window side")
    p.add_argument("--skip-pretrain", action="store_true")
    p.add_argument("--skip-backbone", action="store_true")
    p.add_argument("--out", type=Path,
                   default=REPO / "benchmarks" / "results" / "compile_trial.md")
    args = p.parse_args()
    if not args.detector_config.is_file():
        p.error(f"--detector-config {args.detector_config}: no such file")
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    rows = ([] if args.skip_pretrain else pretrain_cases(args)) + \
        ([] if args.skip_backbone else backbone_cases(args))
    load1 = os.getloadavg()[0]
    lines = [
        "## torch.compile trial (inductor, CPU)",
        "",
        f"`python benchmarks/compile_trial.py {' '.join(sys.argv[1:])}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
        f"torch {torch.__version__}, {args.threads} threads, load average {load0:.1f} before "
        f"/ {load1:.1f} after. Steady state: median of {args.steps} calls, eager and compiled "
        "taking turns; compile time: the compiled module's first two calls minus two eager "
        "calls.",
        "",
        "| case | eager ms | compiled ms | speed-up | compile s | break-even calls |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        if "error" in r:
            lines.append(f"| {label} | {1000 * r['eager']:.0f} | fails: {r['error']} | | | |")
            continue
        lines.append(f"| {label} | {1000 * r['eager']:.0f} | {1000 * r['compiled']:.0f} | "
                     f"{r['eager'] / r['compiled']:.2f}x | {r['compile_s']:.0f} | "
                     f"{r['break_even']:.0f} |")
    publish("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
