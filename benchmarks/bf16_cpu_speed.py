"""bf16 autocast against fp32 on this CPU: is bf16 native here, and what does it cost?

Times, in one process and one thread, (1) a square matmul and (2) a training step of
the mini-ViT cell-type classifier (`dama-det classify`'s model: 128 wide, 4 blocks,
7 x 128 x 128 input, batch 32, AdamW), each in fp32 and under
``torch.autocast("cpu", torch.bfloat16)``, alternating the two modes so load falls on
both. On CPUs with native bf16 (avx512_bf16 / amx_bf16 flags,
``dama_det.utils.device.cpu_has_native_bf16``) bf16 is the faster mode; on others it is
emulated, which is why ``--amp auto`` picks fp32 there and an explicit ``--amp bf16``
warns. Printed and written as markdown to ``--out`` (default
``benchmarks/results/bf16_cpu_speed.md``, which ``collect_results.py`` puts into
BENCHMARKS.md).

Usage: ``python benchmarks/bf16_cpu_speed.py [--threads 1] [--repeats 3]``
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _seconds(fn, repeats: int) -> float:
    fn()  # warm-up (first-call allocations, kernel choice)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def _matmul(n: int, bf16: bool):
    a, b = torch.randn(n, n), torch.randn(n, n)

    def run():
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            a @ b
    return run


def _classifier_step(bf16: bool, batch: int = 32):
    from dama_det.classification.model import build_classifier
    from dama_det.encoder_export.format import ViTArch

    torch.manual_seed(0)
    model = build_classifier(ViTArch(16, 128, 4, 4), img_size=128, in_chans=7, num_classes=5,
                             drop_path=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, y = torch.randn(batch, 7, 128, 128), torch.randint(0, 5, (batch,))

    def run():
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return run


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per mode")
    parser.add_argument("--note", default="", help="appended to the conditions line, e.g. "
                        "'; E42 on the other core'")
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "bf16_cpu_speed.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from collect_results import publish
    from dama_det.utils.device import cpu_has_native_bf16

    cases = [("matmul 512 x 512", lambda b: _matmul(512, b), None),
             ("mini-ViT classifier training step, batch 32, 7 x 128 x 128",
              _classifier_step, 32)]
    rows = []
    for name, make, images in cases:
        fp32, bf16 = make(False), make(True)
        t32, t16 = [], []
        for _ in range(2):  # fp32, bf16, fp32, bf16
            t32.append(_seconds(fp32, args.repeats))
            t16.append(_seconds(bf16, args.repeats))
        a, b = min(t32), min(t16)
        speed = (f" ({images / a:.1f} / {images / b:.1f} img/s)" if images else "")
        rows.append(f"| {name} | {1e3 * a:.1f} | {1e3 * b:.1f} | {b / a:.2f}x{speed} |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = "\n".join([
        "## bf16 autocast against fp32 on this CPU (`benchmarks/bf16_cpu_speed.py`)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. CPU: {_cpu_name()}; "
        "native bf16 (avx512_bf16 / amx_bf16): "
        f"{'yes' if cpu_has_native_bf16() else 'no'}; torch {torch.__version__}, "
        f"{args.threads} thread(s); load average {load:.2f} at the end; best of 2 rounds "
        f"of {args.repeats} calls per mode{args.note}.",
        "",
        "| case | fp32 (ms) | bf16 autocast (ms) | bf16 / fp32 time |",
        "|---|---|---|---|",
        *rows,
        "",
        "Without native bf16 the CPU emulates it: `--amp auto` runs fp32 there and an "
        "explicit `--amp bf16` prints a warning (`dama_det.utils.device.resolve_amp_dtype`).",
        "",
    ])
    publish(text, args.out)


if __name__ == "__main__":
    main()
