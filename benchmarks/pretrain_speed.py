"""Pretraining step speed on CPU: MAE vs DAMA, test-size and tiny ViT, fp32 vs bf16.

Times forward + backward + AdamW step at 128 x 128 x 7 and prints, per
configuration, ms/step, images/s, peak memory, and achieved GFLOP/s (fvcore FLOP
count of the forward x 3 for forward + backward, divided by the step time) next to a
plain large matmul's GFLOP/s measured in the same run (the hardware ceiling), and the
DAMA / MAE step-time ratio (target <= 2.1: DAMA is two students, not more).
MAE and DAMA steps are timed interleaved in one process (so load changes on a shared
machine hit both alike; best step kept); peak memory is measured per configuration
in its own process. Results go to
``benchmarks/results/pretrain_speed.md``.

Usage::

    python benchmarks/pretrain_speed.py [--steps 3] [--threads N] [--sizes test tiny]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BATCH = {"test": 32, "tiny": 16}


def _sdpa_flop(inputs, outputs):
    """fvcore handle for scaled_dot_product_attention: QK^T and AV, in multiply-adds."""
    from fvcore.nn.jit_handles import get_shape

    q, k = get_shape(inputs[0]), get_shape(inputs[1])
    *batch, lq, d = q
    lk = k[-2]
    n = 1
    for b in batch:
        n *= b
    return 2 * n * lq * lk * d


def forward_gflop(model, imgs) -> float:
    """Forward FLOPs (2 x multiply-adds counted by fvcore) in GFLOP."""
    import logging

    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    analysis = FlopCountAnalysis(model, (imgs,))
    for op in ("aten::scaled_dot_product_attention",
               "aten::_scaled_dot_product_flash_attention_for_cpu"):
        analysis.set_op_handle(op, _sdpa_flop)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return 2 * analysis.total() / 1e9


def matmul_gflops(dtype_name: str, n: int = 2048, seconds: float = 2.0) -> float:
    """Achieved GFLOP/s of an n x n x n matmul (the ceiling for dense work)."""
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def _build(size: str, method: str):
    from dama_det.pretrain.dama import DAMAPretrainer, MethodConfig
    from dama_det.pretrain.driver import build_optimizer

    model = DAMAPretrainer(mae_config_for(size), MethodConfig(method=method))
    return model, build_optimizer(model, 0.05)


def _step_fn(model, opt, imgs, dtype_name: str):
    from dama_det.utils import autocast_context
    from dama_det.utils.device import explicit_attention_for_cpu_bf16

    dtype = torch.bfloat16 if dtype_name == "bf16" else None
    explicit_attention_for_cpu_bf16(model, torch.device("cpu"), dtype)  # as the product

    def step():
        with autocast_context(torch.device("cpu"), dtype):
            loss, _, _ = model(imgs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _memory(size: str, method: str, dtype_name: str, threads: int, queue) -> None:
    """Peak resident memory of one configuration (own process)."""
    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    imgs = torch.rand(BATCH[size], 7, 128, 128)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model, opt = _build(size, method)
    step = _step_fn(model, opt, imgs, dtype_name)
    step()
    step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put(dict(peak_rss_mb=peak / 1024, train_rss_mb=(peak - base) / 1024))


def _timing(size: str, dtype_name: str, steps: int, threads: int, queue) -> None:
    """Step times of MAE and DAMA, interleaved step by step so that load changes on a
    shared machine hit both alike; the best step of each is kept."""
    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    imgs = torch.rand(BATCH[size], 7, 128, 128)
    runs = {}
    for method in ("mae", "dama"):
        model, opt = _build(size, method)
        runs[method] = (model, _step_fn(model, opt, imgs, dtype_name))
        runs[method][1]()  # warm-up
    times: dict[str, list[float]] = {m: [] for m in runs}
    for _ in range(steps):
        for method, (_, step) in runs.items():
            start = time.perf_counter()
            step()
            times[method].append(time.perf_counter() - start)
    out = {}
    for method, (model, _) in runs.items():
        fwd = forward_gflop(LossOnly(model).eval(), imgs[:1]) * imgs.shape[0]
        best = min(times[method])
        out[method] = dict(size=size, method=method, dtype=dtype_name, batch=imgs.shape[0],
                           step_s=best, median_s=sorted(times[method])[len(times[method]) // 2],
                           images_per_s=imgs.shape[0] / best, gflop_per_step=3 * fwd,
                           gflops=3 * fwd / best)
    queue.put(out)


def mae_config_for(size: str):
    from dama_det.pretrain.models_mae import mae_config

    return mae_config(size, img_size=128, patch_size=16, in_chans=7)


class LossOnly(torch.nn.Module):
    """Wraps the pretraining model so fvcore traces a function returning only the loss."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)[0]


def run_isolated(target, *config):
    """Run ``target(*config, queue)`` in a fresh process and return what it puts."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*config, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5,
                        help="timed steps per configuration (best is kept)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sizes", nargs="+", default=["test", "tiny"], choices=sorted(BATCH))
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "pretrain_speed.md"))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    ceilings = {d: matmul_gflops(d) for d in args.dtypes}
    rows = []
    for size in args.sizes:
        for dtype in args.dtypes:
            timed = run_isolated(_timing, size, dtype, args.steps, args.threads)
            for method in ("mae", "dama"):
                r = {**timed[method], **run_isolated(_memory, size, method, dtype, args.threads)}
                rows.append(r)
                print(f"{size:5s} {method:5s} {dtype}: {r['step_s'] * 1e3:8.1f} ms/step  "
                      f"(median {r['median_s'] * 1e3:.1f})  {r['images_per_s']:7.1f} img/s  "
                      f"{r['gflops']:6.1f} GFLOP/s "
                      f"({100 * r['gflops'] / ceilings[dtype]:.0f}% of matmul "
                      f"{ceilings[dtype]:.0f})  "
                      f"peak RSS {r['peak_rss_mb']:.0f} MB "
                      f"(+{r['train_rss_mb']:.0f} MB training)", flush=True)
    load_after = os.getloadavg()

    lines = [
        "## Pretraining speed (CPU)",
        "",
        f"`python benchmarks/pretrain_speed.py --steps {args.steps} --threads {args.threads}`; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
        f"{args.threads} "
        f"torch threads, torch {torch.__version__}; load average {load_before[0]:.1f} before / "
        f"{load_after[0]:.1f} after (the cores are shared with other jobs, so times are noisy: "
        "best of the timed steps is reported).",
        "",
        "Forward + backward + AdamW step, 128 x 128 x 7 crops, mask ratio 0.8, paper losses. "
        "GFLOP/s = 3 x fvcore forward FLOPs (2 per multiply-add, attention included) / step time; "
        "ceiling = 2048^3 matmul in the same run: "
        + ", ".join(f"{d} {g:.0f} GFLOP/s" for d, g in ceilings.items()) + ".",
        "",
        "| model | batch | dtype | method | ms/step (best) | ms/step (median) | images/s | "
        "GFLOP/step | GFLOP/s | % of matmul | peak RSS MB (+training) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['batch']} | {r['dtype']} | {r['method']} | "
            f"{r['step_s'] * 1e3:.1f} | "
            f"{r['median_s'] * 1e3:.1f} | "
            f"{r['images_per_s']:.1f} | {r['gflop_per_step']:.1f} | {r['gflops']:.1f} | "
            f"{100 * r['gflops'] / ceilings[r['dtype']]:.0f}% | {r['peak_rss_mb']:.0f} "
            f"(+{r['train_rss_mb']:.0f}) |")
    lines += ["", "| model | dtype | DAMA / MAE step time, best (target <= 2.1) | same, median | "
              "DAMA / MAE FLOPs | bf16 speed-up (MAE, DAMA) |", "|---|---|---|---|---|---|"]
    by = {(r["size"], r["dtype"], r["method"]): r for r in rows}
    for size in args.sizes:
        for dtype in args.dtypes:
            dama, mae = by[(size, dtype, "dama")], by[(size, dtype, "mae")]
            ratio = dama["step_s"] / mae["step_s"]
            median = dama["median_s"] / mae["median_s"]
            flops = dama["gflop_per_step"] / mae["gflop_per_step"]
            speed = ""
            if dtype == "bf16" and "fp32" in args.dtypes:
                speed = ", ".join(
                    f"{by[(size, 'fp32', m)]['step_s'] / by[(size, 'bf16', m)]['step_s']:.2f}x"
                    for m in ("mae", "dama"))
            lines.append(
                f"| {size} | {dtype} | {ratio:.2f} | {median:.2f} | {flops:.2f} | {speed} |")
            print(f"{size} {dtype}: DAMA / MAE step time = {ratio:.2f} "
                  f"(median {median:.2f}, FLOPs {flops:.2f})"
                  + (f"; bf16 speed-up {speed}" if speed else ""))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
