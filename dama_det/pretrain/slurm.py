"""Submit pretraining to SLURM with submitit (``dama-det pretrain --slurm``).

One task per GPU on ``--nodes`` nodes; each task exports the torch.distributed
environment from SLURM's and runs :func:`driver.run_pretraining`. On pre-emption or
time-out submitit calls :meth:`PretrainJob.checkpoint`, which requeues the job with
``--resume auto`` so it continues from ``checkpoint-last.pth``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .options import PretrainOptions


class PretrainJob:
    """The callable submitit runs on every task."""

    def __init__(self, args: PretrainOptions):
        self.args = args

    def __call__(self) -> dict:
        import submitit

        from .driver import run_pretraining

        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        return run_pretraining(self.args.replace(slurm=False))

    def checkpoint(self):
        """Requeue, resuming from the last checkpoint (submitit's pre-emption hook)."""
        import submitit

        return submitit.helpers.DelayedSubmission(PretrainJob(self.args.replace(resume="auto")))


def submit_pretraining(args: PretrainOptions | argparse.Namespace, cluster: str | None = None):
    """Submit the run described by ``args`` and return the submitit job.

    Args:
        args: pretraining options, checked before submission (``--nodes``, ``--ngpus``,
            ``--partition``, ``--timeout-min``, ``--mem-gb``, ``--cpus-per-task``, ``--slurm-dir``).
        cluster: submitit cluster override (``"local"``/``"debug"`` for testing);
            None picks SLURM when available.
    """
    import submitit

    args = PretrainOptions.of(args).validate()
    folder = Path(args.slurm_dir or Path(args.output_dir) / "slurm") / "%j"
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster, slurm_max_num_timeout=30)
    params = dict(
        name="dama_pretrain", timeout_min=args.timeout_min, nodes=args.nodes,
        tasks_per_node=args.ngpus, gpus_per_node=args.ngpus, cpus_per_task=args.cpus_per_task,
        mem_gb=args.mem_gb,
    )
    if args.partition:
        params["slurm_partition"] = args.partition
    executor.update_parameters(**params)
    if args.resume is None:  # a requeued/pre-empted job continues where it stopped
        args = args.replace(resume="auto")
    return executor.submit(PretrainJob(args))
