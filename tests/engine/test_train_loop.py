"""Training with the instant-test config: train, evaluate, checkpoints, resume,
eval-only, layer-wise lr decay, epoch schedule, CPU bf16, overfitting, DDP on CPU."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dama_det import get_dama_cfg
from dama_det.engine import QUICK_CONFIG, build_argument_parser
from dama_det.engine.launch import main
from dama_det.errors import DamaUserError
from tests.helpers.disk_coco import make_disk_coco

# Detectron2's COCO evaluator trips a numpy-2 deprecation once per predicted mask.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def disks(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("disks")
    return {
        "train": make_disk_coco(root, "train", n_images=2, seed=0),
        "val": make_disk_coco(root, "val", n_images=1, seed=1),
    }


def parse(out: Path, train: Path, val: Path, *extra: str):
    return build_argument_parser().parse_args(
        ["--config-file", QUICK_CONFIG, "--output-dir", str(out), "--train-json", str(train),
         "--val-json", str(val), "--seed", "0", *extra]
    )


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]


def test_instant_config_trains_evaluates_resumes(tmp_path, disks):
    out = tmp_path / "run"
    args = parse(out, disks["train"], disks["val"], "SOLVER.MAX_ITER", "6", "TEST.EVAL_PERIOD",
                 "3", "SOLVER.CHECKPOINT_PERIOD", "3", "SOLVER.STEPS", "(4,)")
    results = main(args)
    assert set(results) == {"bbox", "segm", "cell"} and "AP" in results["segm"]
    for name in ("model_final.pth", "model_best.pth", "model_0000002.pth", "config.yaml",
                 "last_checkpoint", "metrics.json"):
        assert (out / name).is_file(), name
    assert list(out.glob("events.out.tfevents.*")), "no TensorBoard events"
    saved = get_dama_cfg()
    saved.merge_from_file(str(out / "config.yaml"))  # loadable, device kept portable
    assert saved.MODEL.DEVICE == "auto" and saved.SOLVER.MAX_ITER == 6
    metrics = read_metrics(out)
    assert any("val_total_loss" in m and m["val_total_loss"] > 0 for m in metrics)
    assert any("segm/AP" in m for m in metrics)
    assert max(m["iteration"] for m in metrics) == 6
    train_loss = [m["total_loss"] for m in metrics if "total_loss" in m]
    assert train_loss and all(torch.isfinite(torch.tensor(train_loss)))

    # resume: continues from iteration 6 up to 9 instead of starting over
    resumed = parse(out, disks["train"], disks["val"], "--resume", "SOLVER.MAX_ITER", "9",
                    "TEST.EVAL_PERIOD", "0", "SOLVER.CHECKPOINT_PERIOD", "100")
    main(resumed)
    assert max(m["iteration"] for m in read_metrics(out)) == 9
    assert "Starting training from iteration 6" in (out / "log.txt").read_text()
    assert torch.load(out / "model_final.pth", weights_only=False)["iteration"] == 8

    # eval-only on the output directory's last checkpoint
    ev = main(parse(out, disks["train"], disks["val"], "--eval-only"))
    assert "segm" in ev and "AP50" in ev["segm"]


def test_eval_only_without_weights_is_a_user_error(tmp_path, disks):
    with pytest.raises(DamaUserError, match="no trained weights"):
        main(parse(tmp_path / "empty", disks["train"], disks["val"], "--eval-only"))


def test_layer_decay_param_groups(tmp_path, disks):
    from dama_det.engine import DamaTrainer, build_cfg

    cfg = build_cfg(parse(tmp_path, disks["train"], disks["val"],
                          "MODEL.DAMA_VIT.LAYER_DECAY", "0.5", "SOLVER.BASE_LR", "0.001"))
    model = DamaTrainer.build_model(cfg)
    opt = DamaTrainer.build_optimizer(cfg, model)
    assert isinstance(opt, torch.optim.AdamW)
    by_param = {}
    for group in opt.param_groups:
        for p in group["params"]:
            by_param[id(p)] = group
    named = dict(model.named_parameters())
    depth = cfg.MODEL.DAMA_VIT.DEPTH  # 2 blocks: embeddings 0.5^3, block0 0.5^2, block1 0.5^1
    expect = {
        "backbone.net.patch_embed.proj.weight": 0.001 * 0.5 ** (depth + 1),
        "backbone.net.pos_embed": 0.001 * 0.5 ** (depth + 1),
        "backbone.net.blocks.0.attn.qkv.weight": 0.001 * 0.5**2,
        "backbone.net.blocks.1.mlp.fc2.weight": 0.001 * 0.5**1,
        "roi_heads.box_predictor.cls_score.weight": 0.001,
        "backbone.simfp_2.0.weight": 0.001,
    }
    for name, lr in expect.items():
        assert by_param[id(named[name])]["lr"] == pytest.approx(lr), name
    assert by_param[id(named["backbone.net.pos_embed"])]["weight_decay"] == 0.0
    assert by_param[id(named["backbone.net.blocks.1.attn.rel_pos_h"])]["weight_decay"] == 0.0
    assert by_param[id(named["backbone.net.blocks.0.norm1.weight"])]["weight_decay"] == 0.0
    assert by_param[id(named["backbone.net.blocks.0.attn.qkv.weight"])]["weight_decay"] == 0.1


def test_epoch_schedule_sets_iterations_from_dataset_size(tmp_path, disks):
    from dama_det.engine import apply_epoch_schedule, build_cfg
    from dama_det.engine.datasets import register_datasets_from_cfg

    cfg = build_cfg(parse(tmp_path, disks["train"], disks["val"], "SOLVER.EPOCHS", "50",
                          "SOLVER.IMS_PER_BATCH", "1", "TEST.EVAL_EPOCHS", "10"))
    register_datasets_from_cfg(cfg)
    apply_epoch_schedule(cfg)
    assert cfg.SOLVER.MAX_ITER == 100  # 2 images / batch 1 x 50 epochs
    assert cfg.SOLVER.STEPS == (88, 96)
    assert cfg.TEST.EVAL_PERIOD == cfg.SOLVER.CHECKPOINT_PERIOD == 20


def test_epoch_schedule_rejects_step_fractions_past_the_end(tmp_path, disks):
    """Percentages for fractions would put both lr drops past MAX_ITER, where they used
    to be dropped silently: a user error naming the key."""
    from dama_det.engine import apply_epoch_schedule, build_cfg
    from dama_det.engine.datasets import register_datasets_from_cfg

    cfg = build_cfg(parse(tmp_path, disks["train"], disks["val"], "SOLVER.EPOCHS", "50",
                          "SOLVER.STEP_FRACTIONS", "(80, 95)"))
    register_datasets_from_cfg(cfg)
    with pytest.raises(DamaUserError, match=r"SOLVER.STEP_FRACTIONS must lie in \(0, 1\)"):
        apply_epoch_schedule(cfg)


def test_cpu_bf16_autocast_training(tmp_path, disks):
    from dama_det.engine import DamaTrainer, build_cfg
    from dama_det.engine.datasets import register_datasets_from_cfg
    from dama_det.engine.train_loop import CPUAutocastTrainer

    cfg = build_cfg(parse(tmp_path, disks["train"], disks["val"], "--amp", "bf16",
                          "SOLVER.MAX_ITER", "2", "TEST.EVAL_PERIOD", "0", "DATASETS.TEST", "()",
                          "DATASETS.TEST_JSON", "()"))
    register_datasets_from_cfg(cfg)
    trainer = DamaTrainer(cfg)
    assert isinstance(trainer._trainer, CPUAutocastTrainer)
    assert trainer._trainer.dtype == torch.bfloat16
    before = trainer.model.backbone.net.blocks[0].mlp.fc1.weight.detach().clone()
    trainer.train()
    after = trainer.model.backbone.net.blocks[0].mlp.fc1.weight
    assert after.dtype == torch.float32 and not torch.equal(before, after)
    losses = trainer.storage.history("total_loss").values()
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(v)) for v, _ in losses)


def test_one_channel_dsb2018_images(tmp_path, dsb2018_dir):
    """Real 1-channel nuclei (a few DSB2018 images converted to COCO) train and evaluate."""
    import shutil

    from dama_det.data.coco_labels import folder_to_coco

    folder = tmp_path / "dsb" / "train"
    folder.mkdir(parents=True)
    for image in sorted(p for p in (dsb2018_dir / "train").glob("*.tif")
                        if not p.name.endswith("_masks.tif"))[:2]:
        shutil.copy(image, folder / image.name)
        shutil.copy(image.with_name(image.stem + "_masks.tif"), folder)
    train_json = tmp_path / "dsb" / "train.json"
    coco = folder_to_coco(folder, progress=False, relative_to=train_json.parent)
    train_json.write_text(json.dumps(coco))
    results = main(parse(tmp_path / "out", train_json, train_json, "MODEL.PIXEL_MEAN", "[0.0]",
                         "MODEL.PIXEL_STD", "[1.0]", "INPUT.CHANNEL_NAMES", "['nuclei']",
                         "SOLVER.MAX_ITER", "2", "TEST.EVAL_PERIOD", "0", "SOLVER.STEPS", "(1,)"))
    assert set(results) == {"bbox", "segm", "cell"}


@pytest.mark.slow
def test_overfits_tiny_training_set(tmp_path, disks):
    """On 2 images, segm AP on those images rises from ~0 to well above it."""
    from dama_det.engine import DamaTrainer, build_cfg
    from dama_det.engine.datasets import register_datasets_from_cfg

    base = ["SOLVER.MAX_ITER", "160", "SOLVER.STEPS", "(140,)", "TEST.EVAL_PERIOD", "0",
            "SOLVER.CHECKPOINT_PERIOD", "1000", "TEST.VAL_LOSS_PERIOD", "0"]
    args = parse(tmp_path / "fit", disks["train"], disks["train"], *base)
    cfg = build_cfg(args)
    register_datasets_from_cfg(cfg)
    torch.manual_seed(0)
    untrained = DamaTrainer.test(cfg, DamaTrainer.build_model(cfg))
    untrained_ap = untrained["segm"]["AP"]
    untrained_ap = 0.0 if untrained_ap != untrained_ap else untrained_ap  # NaN: no detections
    trained = main(args)
    assert trained["segm"]["AP"] > untrained_ap + 20, (untrained, trained)
    assert trained["segm"]["AP50"] > 60, trained


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path, disks, monkeypatch):
    """Two gloo processes through Detectron2's launch (spawned workers)."""
    from dama_det.engine import launch_from_args

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "ddp"
    args = parse(out, disks["train"], disks["val"], "--num-gpus", "2", "--device", "cpu",
                 "SOLVER.MAX_ITER", "3", "SOLVER.IMS_PER_BATCH", "2", "TEST.EVAL_PERIOD", "0",
                 "SOLVER.STEPS", "(2,)")
    launch_from_args(args)
    log = (out / "log.txt").read_text()
    assert "World size: 2" in log
    assert (out / "model_final.pth").is_file()
    assert "segm/AP" in (out / "metrics.json").read_text()
