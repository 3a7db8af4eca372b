"""Where a CPU pretraining step spends its time, and what the fused AdamW kernel saves.

Part 1 (``torch.profiler``): one DAMA step (forward + backward + optimizer) of the
``--size`` ViT at batch ``--batch``, 128 x 128 x 7, in bf16 as it was (plain autocast,
PyTorch's flash attention kernel, loop AdamW) and as the product runs it now
(``autocast_context``, timm's explicit attention, fused AdamW, the token stream in
bf16), profiled after warm-up; the tables list the ops with the most self CPU time and the
share of the step spent in matmul-type ops (``aten::mm``/``bmm``/``addmm``/
``_scaled_dot_product*``/ convolution).

Part 2: the step timed in every configuration of :data:`CONFIGS` (fp32 / bf16, loop /
fused AdamW, flash / math / explicit attention) in the same process, the configurations taking
turns step by step (load from other jobs falls on all alike); median and best of
``--steps`` steps each, the optimizer step alone, and the speed against fp32 before.

Writes ``--out`` (default ``benchmarks/results/pretrain_profile.md``; ``collect_results.py``
puts it into BENCHMARKS.md).

Usage: ``python benchmarks/pretrain_profile.py [--size tiny] [--threads 2] [--steps 6]``
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MATMUL_OPS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::linear", "aten::matmul",
              "aten::_scaled_dot_product", "aten::convolution", "aten::_convolution",
              "aten::mkldnn_convolution", "aten::baddbmm")


def build(size: str, fused: bool, explicit: bool = False):
    """A DAMA pretrainer of ``size`` (seed 0) and its optimizer (fused or loop AdamW);
    ``explicit``: timm's attention on its explicit path (the product's CPU bf16 setting)."""
    from timm.optim import param_groups_weight_decay

    from dama_det.pretrain.dama import DAMAPretrainer, MethodConfig
    from dama_det.pretrain.models_mae import mae_config
    from dama_det.utils.device import explicit_attention_for_cpu_bf16
    from dama_det.utils.optim import build_adamw

    torch.manual_seed(0)
    model = DAMAPretrainer(mae_config(size, img_size=128, patch_size=16, in_chans=7),
                           MethodConfig(method="dama"))
    if explicit:
        explicit_attention_for_cpu_bf16(model, torch.device("cpu"), torch.bfloat16)
    groups = param_groups_weight_decay(model, 0.05, no_weight_decay_list=model.no_weight_decay())
    opt = (build_adamw(groups, lr=1e-4, betas=(0.9, 0.95)) if fused
           else torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95)))
    return model, opt


#: (label, dtype, fused AdamW, product autocast, explicit attention, bf16 token stream) of
#: each timed configuration: the fp32 loop baseline, the bf16 path as it was (plain
#: autocast: flash attention on CPU, loop AdamW), each change alone, and the product's path
#: (``autocast_context`` and fused AdamW; under CPU bf16 timm's attention on its explicit
#: path, ``explicit_attention_for_cpu_bf16``, and the token stream in bf16,
#: ``models_mae.autocast_stream``; the math kernel and an fp32 stream were earlier choices).
CONFIGS = [
    ("fp32, loop AdamW (before)", "fp32", False, False, False, False),
    ("fp32, fused AdamW (now)", "fp32", True, True, False, True),
    ("bf16, flash attention, loop AdamW (before)", "bf16", False, False, False, False),
    ("bf16, flash attention, fused AdamW", "bf16", True, False, False, False),
    ("bf16, math attention, loop AdamW", "bf16", False, True, False, False),
    ("bf16, math attention, fused AdamW", "bf16", True, True, False, False),
    ("bf16, explicit attention, fused AdamW, fp32 stream (previous default)", "bf16", True,
     True, True, False),
    ("bf16, explicit attention, fused AdamW, bf16 stream (now)", "bf16", True, True, True,
     True),
]


def make_step(model, opt, imgs, dtype_name: str, product_autocast: bool,
              bf16_stream: bool = True):
    """Closure running one training step; returns (total s, optimizer-step s).

    ``product_autocast``: dama_det's ``autocast_context`` (math attention under CPU bf16);
    else plain ``torch.autocast`` (PyTorch's default attention kernel choice).
    ``bf16_stream``: the product's token stream in the autocast dtype; False keeps it in
    fp32 as before (``models_mae.autocast_stream`` replaced by the identity for the step).
    """
    from dama_det.pretrain import models_mae
    from dama_det.utils import autocast_context

    stream = models_mae.autocast_stream if bf16_stream else (lambda x: x)

    dtype = torch.bfloat16 if dtype_name == "bf16" else None

    def context():
        if product_autocast:
            return autocast_context(torch.device("cpu"), dtype)
        return torch.autocast("cpu", dtype=dtype, enabled=dtype is not None)

    def step() -> tuple[float, float]:
        start = time.perf_counter()
        product_stream, models_mae.autocast_stream = models_mae.autocast_stream, stream
        try:
            with context():
                loss, _, _ = model(imgs)
        finally:
            models_mae.autocast_stream = product_stream
        opt.zero_grad(set_to_none=True)
        loss.backward()
        mid = time.perf_counter()
        opt.step()
        end = time.perf_counter()
        return end - start, end - mid
    return step


def profile_table(step, top: int) -> tuple[list[tuple[str, float, int]], float, float]:
    """Self CPU ms per op of one profiled step; returns (top rows, matmul ms, total ms)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    rows = [(e.key, e.self_cpu_time_total / 1000, e.count) for e in prof.key_averages()]
    rows.sort(key=lambda r: -r[1])
    total = sum(r[1] for r in rows)
    matmul = sum(r[1] for r in rows if r[0].startswith(MATMUL_OPS))
    return rows[:top], matmul, total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="tiny", help="pretraining model size")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--steps", type=int, default=6, help="timed steps per configuration")
    p.add_argument("--top", type=int, default=15, help="ops listed in the profile table")
    p.add_argument("--out", type=Path,
                   default=REPO / "benchmarks" / "results" / "pretrain_profile.md")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    imgs = torch.randn(args.batch, 7, 128, 128, generator=torch.Generator().manual_seed(0))
    load0 = os.getloadavg()[0]

    steps = []
    for label, dtype_name, fused, product, explicit, bf16_stream in CONFIGS:
        model, opt = build(args.size, fused, explicit)
        steps.append(make_step(model, opt, imgs, dtype_name, product, bf16_stream))
        for _ in range(2):
            steps[-1]()  # warm-up (first-call allocations, optimizer state)
        del model, opt
    profiled = {}
    for i in (2, len(CONFIGS) - 1):  # bf16 before / now
        profiled[i] = profile_table(steps[i], args.top)
    times: list[list[tuple[float, float]]] = [[] for _ in CONFIGS]
    for _ in range(args.steps):
        for i, step in enumerate(steps):
            times[i].append(step())
    load1 = os.getloadavg()[0]
    med = [statistics.median(t for t, _ in ts) for ts in times]

    def profile_lines(i: int) -> list[str]:
        rows, matmul_ms, total_ms = profiled[i]
        return [
            f"One profiled step of **{CONFIGS[i][0]}**: matmul-type ops {matmul_ms:.0f} ms of "
            f"{total_ms:.0f} ms self CPU time ({100 * matmul_ms / total_ms:.0f} %).",
            "",
            "| op | self CPU ms | calls |",
            "|---|---|---|",
            *[f"| `{name}` | {ms:.1f} | {count} |" for name, ms, count in rows],
            "",
        ]

    lines = [
        "## Pretraining step profile (CPU)",
        "",
        f"`python benchmarks/pretrain_profile.py --size {args.size} --batch {args.batch} "
        f"--threads {args.threads} --steps {args.steps}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
        f"torch {torch.__version__}, load average {load0:.1f} before / {load1:.1f} after. "
        "DAMA (two students), 128 x 128 x 7 crops, forward + backward + optimizer step, "
        "after 2 warm-up steps.",
        "",
        *profile_lines(2),
        *profile_lines(len(CONFIGS) - 1),
        f"Step times, {args.steps} steps per configuration, the configurations taking turns "
        "step by step (load from other jobs falls on all alike):",
        "",
        "| configuration | step ms (median) | best | optimizer.step() ms (median) | images/s "
        "| speed vs fp32 before |",
        "|---|---|---|---|---|---|",
    ]
    for i, (label, *_rest) in enumerate(CONFIGS):
        tot = [t for t, _ in times[i]]
        optim = [o for _, o in times[i]]
        lines.append(f"| {label} | {1000 * med[i]:.0f} | {1000 * min(tot):.0f} | "
                     f"{1000 * statistics.median(optim):.1f} | {args.batch / med[i]:.1f} | "
                     f"{med[0] / med[i]:.2f}x |")
    lines += ["", f"bf16 now vs bf16 before: {med[2] / med[-1]:.2f}x; bf16 now vs fp32 "
              f"before: {med[0] / med[-1]:.2f}x, vs fp32 now: {med[1] / med[-1]:.2f}x "
              "(issue 12's target: >= 2x); the bf16 token stream alone: "
              f"{med[-2] / med[-1]:.2f}x."]
    text = "\n".join(lines) + "\n"
    publish(text, args.out)


if __name__ == "__main__":
    main()
