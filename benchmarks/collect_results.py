"""Assemble BENCHMARKS.md from the per-benchmark result files in benchmarks/results/.

Each benchmark script writes its own ``benchmarks/results/<name>.md``; this script
concatenates them (in a fixed order) under one header. ``make benchmarks`` runs it last.
"""
from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ORDER = ["demo_end_to_end", "compare_dsb2018_cpu", "transfer_study", "labels_curve_dsb2018",
         "amp_parity", "bf16_cpu_speed", "pretrain_speed", "pretrain_profile", "compile_trial",
         "detect_speed", "tiling_speed", "eval_speed", "data_io", "classification"]
HEADER = """# Benchmarks

Speed and memory figures of dama_det on this project's reference machine: 2 CPU cores,
24 GB RAM, no GPU, torch 2.14.1. Each section is written by the script named in it
(`benchmarks/*.py`; `make benchmarks` runs them all and rebuilds this file) and notes its
conditions. The speed sections (demo, pretraining speed and profile, detection speed,
tiling, torch.compile, evaluation, data I/O) come from one run on 2026-12-04 15:15-16:30
UTC with nothing else on the machine (the load average they print, 1-2, is their own
2 threads), on an Intel Xeon with AMX-BF16 and avx512_bf16; the machine behind the
project's name changed between sessions, and the studies (transfer, floor, classification)
ran earlier on an AMD EPYC with avx512_bf16 (no AMX), often on shared cores; E41, E42 and
the bf16 section ran on 2026-12-06/07 on another AMD EPYC with AVX2 only (no native bf16).
Ratios measured inside one run are more reliable than absolute times.
"""


def publish(text: str, out: Path) -> None:
    """Print a benchmark's markdown section and write it to ``out`` (its results file)."""
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()
    files = sorted(args.results.glob("*.md"),
                   key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem))
    parts = [HEADER] + [p.read_text().strip() + "\n" for p in files]
    args.out.write_text("\n".join(parts))
    print(f"wrote {args.out} from {len(files)} result file(s)")


if __name__ == "__main__":
    main()
