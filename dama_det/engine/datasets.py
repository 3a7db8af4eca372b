"""Register the datasets a config names, from COCO json files given in the config or
on the command line, and provide the built-in synthetic data sets.

``synth_train`` / ``synth_val`` are the synthetic 7-channel tiles of
``dama_det.data.synth.generate_dataset`` (``DIR/tiles/{train,val}.json``), where DIR is
``DATASETS.SYNTH_DIR`` or ``OUTPUT_DIR/synth_data``; they are generated there when
absent. Any other name needs a json (``DATASETS.TRAIN_JSON`` / ``TEST_JSON``, or
``--train-json`` / ``--val-json``) unless it is already registered in Detectron2.
"""
from __future__ import annotations

import logging
from pathlib import Path

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog

from ..errors import DamaUserError

logger = logging.getLogger(__name__)

SYNTH_SPLITS = {"synth_train": "train", "synth_val": "val"}


def synth_data_dir(cfg: CfgNode) -> Path:
    """Folder of the synthetic data used for ``synth_train`` / ``synth_val``."""
    return Path(cfg.DATASETS.SYNTH_DIR or Path(cfg.OUTPUT_DIR) / "synth_data")


def synth_json(data_dir: Path, split: str) -> Path:
    """COCO json of one synthetic split (``train`` / ``val``)."""
    return data_dir / "tiles" / f"{split}.json"


def ensure_synthetic_data(cfg: CfgNode) -> Path | None:
    """Generate the synthetic data set if the config uses it and it is absent.

    Call it once (in the launching process) before training starts.

    Returns:
        The synthetic data folder, or None if the config uses no synthetic set.
    """
    names = list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
    jsons = _json_map(cfg)
    if not any(n in SYNTH_SPLITS and not jsons.get(n) for n in names):
        return None
    data_dir = synth_data_dir(cfg)
    if all(synth_json(data_dir, s).is_file() for s in SYNTH_SPLITS.values()):
        return data_dir
    from ..data.synth import generate_dataset

    logger.info("Synthetic data not found in %s: generating it (seed %d)", data_dir,
                cfg.DATASETS.SYNTH_SEED)
    d = cfg.DATASETS
    generate_dataset(
        data_dir,
        n_train_tiles=int(d.SYNTH_TRAIN_TILES),
        n_val_tiles=int(d.SYNTH_VAL_TILES),
        tile_size=int(d.SYNTH_TILE_SIZE),
        n_crops_per_type=0,  # detection needs the tiles only
        seed=int(d.SYNTH_SEED),
        preview=False,
    )
    missing = [str(synth_json(data_dir, s)) for s in SYNTH_SPLITS.values()
               if not synth_json(data_dir, s).is_file()]
    if missing:
        raise DamaUserError(f"synthetic data generation did not write {', '.join(missing)}")
    return data_dir


def _json_map(cfg: CfgNode) -> dict[str, str]:
    """Dataset name -> json path ("" = none) from DATASETS.TRAIN_JSON / TEST_JSON."""
    out: dict[str, str] = {}
    for names_key, json_key in (("TRAIN", "TRAIN_JSON"), ("TEST", "TEST_JSON")):
        names, jsons = list(cfg.DATASETS[names_key]), list(cfg.DATASETS[json_key])
        if jsons and len(jsons) != len(names):
            raise DamaUserError(
                f"DATASETS.{json_key} has {len(jsons)} file(s) but DATASETS.{names_key} names "
                f"{len(names)} dataset(s) {names}; give one json per dataset"
            )
        for name, js in zip(names, jsons or [""] * len(names)):
            if out.get(name) and js and out[name] != js:
                raise DamaUserError(f"dataset {name!r} is given two json files: {out[name]}, {js}")
            out[name] = out.get(name) or str(js)
    return out


def register_datasets_from_cfg(cfg: CfgNode) -> list[str]:
    """Register every dataset in ``DATASETS.TRAIN`` and ``DATASETS.TEST``.

    Args:
        cfg: the training config.

    Returns:
        The dataset names now available.

    Raises:
        DamaUserError: a dataset with no json and no registration, or a missing file.
    """
    from ..data.register import register_nchannel_coco

    for name, json_file in _json_map(cfg).items():
        if json_file:
            register_nchannel_coco(name, json_file)
        elif name in SYNTH_SPLITS:
            path = synth_json(synth_data_dir(cfg), SYNTH_SPLITS[name])
            if not path.is_file():
                raise DamaUserError(
                    f"{path}: synthetic data missing (create it with `dama-det data synth --out "
                    f"{synth_data_dir(cfg)}` or let `dama-det train` generate it)"
                )
            register_nchannel_coco(name, path)
        elif name not in DatasetCatalog.list():
            raise DamaUserError(
                f"dataset {name!r} has no COCO json: pass --train-json / --val-json or set "
                "DATASETS.TRAIN_JSON / DATASETS.TEST_JSON in the config"
            )
        logger.info("Dataset %s: %s", name,
                    MetadataCatalog.get(name).get("json_file", "registered"))
    return list(_json_map(cfg))


def check_dataset_images(cfg: CfgNode) -> int:
    """Check, from the file headers alone, every image of the registered
    ``DATASETS.TRAIN`` and ``DATASETS.TEST``: a readable TIFF (not corrupt or truncated)
    with ``len(MODEL.PIXEL_MEAN)`` channels and the size its json gives. Run before
    training starts, so that a bad image stops it at once, before anything is written.

    Returns:
        The number of images checked.

    Raises:
        DamaUserError: naming the image at fault.
    """
    from ..data.tiff_io import read_tiff_header

    channels = len(cfg.MODEL.PIXEL_MEAN)
    checked: set[str] = set()
    for name in dict.fromkeys([*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST]):
        for record in DatasetCatalog.get(name):
            path = record["file_name"]
            if path in checked:
                continue
            checked.add(path)
            header = read_tiff_header(path, expected_channels=channels)
            size = (record.get("height", header.height), record.get("width", header.width))
            if (header.height, header.width) != tuple(size):
                raise DamaUserError(
                    f"{path}: image is {header.height}x{header.width} but dataset {name!r} "
                    f"says {size[0]}x{size[1]}"
                )
    return len(checked)
