"""Run a `dama-det compare` description as parallel (method, seed) jobs on one machine.

`dama-det compare` runs its methods and seeds one after another. On a GPU each job (a
mini-ViT pretraining, a 1800-iteration detector) leaves the card mostly idle, so this
script runs them side by side, as separate processes over one output folder (every
stage of a comparison writes under runs/<method>/seed<k>, so jobs never share a file):

1. the description's data stage (COCO files, pretraining crops) runs once;
2. every (method, seed) pair (pretraining, export, detector training and prediction on
   each labelled fraction; ``classical`` once) runs as a process of this script, at
   most ``--jobs`` at a time, longest pretraining first;
3. each seed's evaluation (the methods whose every seed finished) runs as a process;
4. ``compare`` itself then writes results.md / .json from them, as a plain
   ``dama-det compare`` of those methods would (every stage's output exists).

A job that fails stops everything (its log's tail is printed) unless ``--keep-going``;
jobs still running at ``--deadline-min`` are stopped and their methods left out of the
results (status.json says which; logs are in OUT/parallel). Usage::

    python benchmarks/transfer/parallel_compare.py configs/compare/dsb2018_gpu_steps.yaml \\
        --out outputs/compare_dsb2018_gpu_steps --jobs 12 --deadline-min 8
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from dama_det.errors import DamaUserError
from dama_det.pipeline.compare import Comparison
from dama_det.pipeline.run_settings import check_and_record_settings
from dama_det.pipeline.run_spec import RunSpec, load_run_spec


def _absolute_raw(spec: RunSpec) -> dict:
    """The description as YAML data, its paths made absolute (for a copy written elsewhere)."""
    raw = yaml.safe_load(spec.source.read_text())
    for key in ("train", "val", "train_json", "val_json", "pretrain_crops"):
        if key in raw["dataset"]:
            raw["dataset"][key] = str(spec.dataset[key])
    if spec.probe is not None and "data" in spec.probe and "probe" in raw:
        raw["probe"]["data"] = str(spec.probe["data"])
    by_name = {m.name: m for m in spec.methods}
    for i, item in enumerate(raw["methods"]):
        if isinstance(item, dict) and "weights" in item:
            raw["methods"][i] = {**item, "weights": str(by_name[item["name"]].weights)}
    return raw


def _method_item(raw: dict, name: str):
    """The description's ``methods`` entry named ``name`` (a string or a mapping)."""
    for item in raw["methods"]:
        if item == name or (isinstance(item, dict) and item.get("name") == name):
            return item
    raise KeyError(name)


def run_method_job(description: Path, out: Path, method: str, seed: int) -> None:
    """``method`` on ``seed`` in this process: pretraining, export, then the detector on
    every labelled fraction and its prediction of the validation images."""
    spec = load_run_spec(description)
    comparison = Comparison(spec, out)
    train, val, crops, channels = comparison.prepare_data()
    m = next(m for m in spec.methods if m.name == method)
    encoder = comparison.pretrained_encoder(m, seed, crops, channels)
    for fraction in spec.label_fractions:
        labelled = comparison.labelled_train(train, fraction, seed)
        comparison.run_method(m, seed, fraction, labelled, val, encoder)


def run_evaluation_job(description: Path, out: Path, seed: int) -> None:
    """The evaluation of all the description's methods on ``seed`` (their predictions
    must exist), on every labelled fraction."""
    spec = load_run_spec(description)
    comparison = Comparison(spec, out)
    _, val, _, _ = comparison.prepare_data()
    for fraction in spec.label_fractions:
        preds = {m.name: comparison.predictions_file(m, seed, fraction) for m in spec.methods}
        comparison.evaluate(preds, val, comparison.evaluation_name(seed, fraction))


class Job:
    """One job of this script (:func:`run_method_job` / :func:`run_evaluation_job`) in its
    own process, logging to ``log``."""

    def __init__(self, name: str, seed: int, argv: list[str], log: Path):
        self.name, self.seed, self.argv, self.log = name, seed, argv, log
        self.proc: subprocess.Popen | None = None
        self.start = self.end = 0.0
        self.state = "waiting"  # waiting | running | done | failed | stopped

    def launch(self, threads: int) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([sys.executable, __file__, *self.argv], stdout=log,
                                         stderr=subprocess.STDOUT, env=env)
        self.start, self.state = time.time(), "running"

    def poll(self) -> None:
        if self.state == "running" and self.proc.poll() is not None:
            self.end = time.time()
            self.state = "done" if self.proc.returncode == 0 else "failed"

    def stop(self) -> None:
        if self.state == "running":
            self.proc.kill()
            self.proc.wait()
            self.end = time.time()
        if self.state in ("running", "waiting"):
            self.state = "stopped"

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text().splitlines()[-lines:])


def run_jobs(jobs: list[Job], *, max_jobs: int, threads: int, deadline: float,
             keep_going: bool, t0: float) -> Job | None:
    """Run ``jobs``, at most ``max_jobs`` at a time, until all end, one fails (unless
    ``keep_going``) or ``deadline`` (a time.time()) passes; returns the first failed job."""
    failed = None
    while any(j.state in ("waiting", "running") for j in jobs):
        for j in jobs:
            j.poll()
        failed = failed or next((j for j in jobs if j.state == "failed"), None)
        if (failed and not keep_going) or time.time() > deadline:
            break
        running = sum(j.state == "running" for j in jobs)
        for j in jobs:
            if j.state == "waiting" and running < max_jobs:
                j.launch(threads)
                running += 1
                print(f"[parallel] {time.time() - t0:5.0f} s start {j.name} seed {j.seed}",
                      flush=True)
        time.sleep(1)
    for j in jobs:
        j.stop()
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("description", help="a `dama-det compare` YAML description")
    parser.add_argument("--out", required=True, help="output folder (as compare's --out)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="jobs at a time (default: the CPU count)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--deadline-min", type=float, default=0.0,
                        help="stop training jobs still running after this many minutes "
                             "(0: none); the evaluation runs after it")
    parser.add_argument("--keep-going", action="store_true",
                        help="let the other jobs finish when one fails")
    parser.add_argument("--job", nargs=2, metavar=("METHOD", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--eval-seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out).resolve()
    if args.job:
        run_method_job(Path(args.description), out, args.job[0], int(args.job[1]))
        return 0
    if args.eval_seed is not None:
        run_evaluation_job(Path(args.description), out, args.eval_seed)
        return 0

    spec, t0 = load_run_spec(args.description), time.time()
    raw = _absolute_raw(spec)
    check_and_record_settings(out, spec)  # refuses a folder made with another description
    Comparison(spec, out).prepare_data()
    print(f"[parallel] data ready in {time.time() - t0:.0f} s", flush=True)
    logs = out / "parallel"
    epochs = {m.name: int(spec.pretrain_of(m).get("epochs", 30)) if m.kind == "pretrain" else 0
              for m in spec.methods}
    jobs = [Job(m.name, seed, [args.description, "--out", str(out), "--job", m.name, str(seed)],
                logs / f"{m.name}_seed{seed}.log")
            for m in sorted(spec.methods, key=lambda m: -epochs[m.name])
            for seed in (spec.seeds[:1] if m.kind == "classical" else spec.seeds)]
    deadline = t0 + 60 * args.deadline_min if args.deadline_min > 0 else float("inf")
    failed = run_jobs(jobs, max_jobs=args.jobs, threads=args.threads, deadline=deadline,
                      keep_going=args.keep_going, t0=t0)
    complete = [m.name for m in spec.methods
                if all(j.state == "done" for j in jobs if j.name == m.name)]
    if failed is None or args.keep_going:
        logs.mkdir(parents=True, exist_ok=True)
        final = logs / "complete_methods.yaml"
        final.write_text(yaml.safe_dump(
            {**raw, "methods": [_method_item(raw, n) for n in complete]}, sort_keys=False))
        evals = [Job("evaluation", seed, [str(final), "--out", str(out), "--eval-seed", str(seed)],
                     logs / f"evaluation_seed{seed}.log") for seed in spec.seeds]
        failed = run_jobs(evals, max_jobs=args.jobs, threads=args.threads,
                          deadline=float("inf"), keep_going=False, t0=t0) or failed
    status = {f"{j.name}_seed{j.seed}": {"state": j.state, "seconds": round(j.end - j.start, 1)}
              for j in jobs}
    (out / "status.json").write_text(json.dumps(status, indent=1))
    if failed is not None:
        print(f"[parallel] {failed.name} seed {failed.seed} failed ({failed.log}):\n"
              f"{failed.tail()}", file=sys.stderr)
        return 1
    results = Comparison(load_run_spec(final), out).run()
    print(f"[parallel] {len(complete)} of {len(spec.methods)} methods complete in "
          f"{time.time() - t0:.0f} s: {results}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DamaUserError as exc:  # a bad description or data: one line, as dama-det prints it
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
