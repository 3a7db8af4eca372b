"""SLURM submission through submitit, run with submitit's in-process debug executor."""
from __future__ import annotations

from dama_det.encoder_export.format import load_encoder_export
from dama_det.pretrain.options import parse_pretrain_args
from dama_det.pretrain.slurm import PretrainJob, submit_pretraining
from tests.helpers.pretrain_crops import small_args, write_crops


def test_submitit_job_runs_and_requeues_with_resume(tmp_path, monkeypatch):
    # the job exports the torch.distributed variables; undo that after the test
    for key in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK",
                "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    data = write_crops(tmp_path / "crops", 4)
    args = parse_pretrain_args(small_args(data, tmp_path / "out", "--epochs", "1", "--slurm",
                                          "--nodes", "1", "--ngpus", "1"))
    job = submit_pretraining(args, cluster="debug")
    result = job.result()
    assert result["epochs_run"] == 1
    assert load_encoder_export(tmp_path / "out" / "encoder.pth")["epoch"] == 1
    # pre-emption: submitit calls checkpoint(), which requeues with --resume auto
    delayed = PretrainJob(args).checkpoint()
    assert delayed.function.args.resume == "auto"
