"""NChannelDatasetMapper, its transforms and Detectron2 dataset registration.

Every instance is painted with its own intensity, so after any geometric transform
its mask must cover exactly the pixels where the image has that intensity.
"""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from scipy import ndimage

from dama_det.config import get_dama_cfg
from dama_det.data.coco_labels import folder_to_coco
from dama_det.data.mapper import NChannelDatasetMapper
from dama_det.data.normalize import percentile_normalize
from dama_det.data.register import load_nchannel_coco_dicts, register_nchannel_coco
from dama_det.data.tiff_io import write_label_image, write_ome_tiff
from dama_det.data.transforms import NativeScaleJitter, RandomRot90, Rot90Transform
from dama_det.errors import DamaUserError
from dama_det.utils import atomic_write_json

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

H, W = 72, 100
CHANNEL_STEP = 50  # channel c of an instance holds value + c * CHANNEL_STEP


def _blob_labels(seed: int, n: int, shape=(H, W)) -> np.ndarray:
    """Non-overlapping rectangles and discs, some touching the border and each other."""
    rng = np.random.default_rng(seed)
    h, w = shape
    labels = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[:h, :w]
    for k in range(1, n + 1):
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        if k % 2:
            free = ((np.abs(yy - cy) <= rng.integers(2, 6))
                    & (np.abs(xx - cx) <= rng.integers(2, 8)))
        else:
            free = (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(4, 30)
        labels[free & (labels == 0)] = 3 * k + 1  # non-contiguous ids
    return labels


def _paint(labels: np.ndarray, channels: int, dtype) -> tuple[np.ndarray, dict[int, int]]:
    """Image (C, H, W) where instance k has value v_k (+ c * CHANNEL_STEP in channel c)."""
    ids = np.unique(labels)[1:]
    step = 7 if dtype == np.uint8 else 13
    start = 5 if dtype == np.uint8 else 1000
    values = {int(i): start + step * k for k, i in enumerate(ids)}
    lut = np.zeros(labels.max() + 1, np.int64)
    for i, v in values.items():
        lut[i] = v
    base = lut[labels]
    offsets = CHANNEL_STEP if dtype != np.uint8 else 1
    img = np.stack([np.where(labels > 0, base + c * offsets, 0) for c in range(channels)])
    assert img.max() <= np.iinfo(dtype).max
    return img.astype(dtype), values


def _dataset(tmp_path, name, channels=7, dtype=np.uint16, n=25, shape=(H, W), labels=None):
    folder = tmp_path / name
    folder.mkdir()
    labels = _blob_labels(1, n, shape) if labels is None else labels
    img, values = _paint(labels, channels, dtype)
    if channels == 1:
        tifffile.imwrite(folder / "img.tif", img[0])  # plain 2-D grey, like DSB2018
    else:
        write_ome_tiff(folder / "img.ome.tif", img)
    write_label_image(folder / "img_masks.tif", labels)
    gt = tmp_path / f"{name}.json"
    atomic_write_json(gt, folder_to_coco(folder, progress=False, relative_to=tmp_path))
    register_nchannel_coco(name, gt)
    (record,) = DatasetCatalog.get(name)
    return record, labels, values


def _check_aligned(out: dict, values: dict[int, int], channels: int, dtype_max: int,
                   offsets: int) -> int:
    """Masks are exactly where the image holds their value; boxes are tight."""
    img = out["image"]
    assert img.dtype == torch.float32 and img.shape[0] == channels
    raw = np.rint(img.numpy().astype(np.float64) * dtype_max).astype(np.int64)
    inside = raw[0] > 0
    for c in range(1, channels):  # every channel went through the same geometry
        np.testing.assert_array_equal(raw[c][inside] - raw[0][inside], c * offsets)
        np.testing.assert_array_equal(raw[c][~inside], 0)
    inst = out["instances"]
    assert inst.image_size == tuple(img.shape[1:])
    masks = inst.gt_masks.tensor.numpy()
    boxes = inst.gt_boxes.tensor.numpy()
    assert (inst.gt_classes.numpy() == 0).all()
    seen = set()
    for mask, box in zip(masks, boxes):
        vals = np.unique(raw[0][mask])
        assert len(vals) == 1 and int(vals[0]) in values.values(), vals
        np.testing.assert_array_equal(mask, raw[0] == vals[0])
        ys, xs = np.nonzero(mask)
        np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        seen.add(int(vals[0]))
    # No instance lost: every value visible in the image has its instance.
    assert seen == set(np.unique(raw[0][inside]).tolist())
    return len(masks)


def _mapper(augs, channels=7, **kw):
    return NChannelDatasetMapper(is_train=True, augmentations=augs, num_channels=channels, **kw)


@pytest.mark.parametrize("channels,dtype", [(7, np.uint16), (1, np.uint8)])
def test_every_geometric_transform_keeps_masks_aligned(tmp_path, channels, dtype):
    record, labels, values = _dataset(tmp_path, f"align{channels}", channels, dtype)
    dmax = np.iinfo(dtype).max
    offsets = CHANNEL_STEP if dtype != np.uint8 else 1
    n_all = len(values)
    cases = {
        "none": [],
        "hflip": [T.HFlipTransform(W)],
        "vflip": [T.VFlipTransform(H)],
        "rot90": [Rot90Transform(H, W, 1)],
        "rot180": [Rot90Transform(H, W, 2)],
        "rot270": [Rot90Transform(H, W, 3)],
        "crop": [T.CropTransform(13, 9, 50, 40)],
        "fixed_crop_pad": [T.FixedSizeCrop((128, 64), pad_value=0.0, seg_pad_value=0)],
        "combined": [Rot90Transform(H, W, 1), T.HFlipTransform(H), T.CropTransform(5, 20, 60, 30),
                     T.VFlipTransform(30)],
        "random": [T.RandomFlip(1.0), T.RandomFlip(1.0, horizontal=False, vertical=True),
                   RandomRot90()],
    }
    for name, augs in cases.items():
        out = _mapper(augs, channels)(record)
        n = _check_aligned(out, values, channels, dmax, offsets)
        if name in ("none", "hflip", "vflip", "rot90", "rot180", "rot270", "random"):
            assert n == n_all, name
        if name == "rot90":
            assert tuple(out["image"].shape[1:]) == (W, H)
            np.testing.assert_array_equal(
                np.rint(out["image"][0].numpy() * dmax), np.rot90(_paint(labels, 1, dtype)[0][0])
            )
        if name == "fixed_crop_pad":
            assert tuple(out["image"].shape[1:]) == (128, 64)
        assert "annotations" not in out


def test_rot90_coords_match_the_image():
    t = Rot90Transform(3, 5, 1)
    img = np.zeros((3, 5), np.uint8)
    img[0, 4] = 1  # pixel box x in [4, 5], y in [0, 1]
    rot = t.apply_image(img)
    ys, xs = np.nonzero(rot)
    box = t.apply_box(np.array([[4.0, 0.0, 5.0, 1.0]]))[0]
    np.testing.assert_array_equal(box, [xs[0], ys[0], xs[0] + 1, ys[0] + 1])
    for k in range(4):
        tk = Rot90Transform(3, 5, k)
        back = tk.inverse().apply_image(tk.apply_image(img))
        np.testing.assert_array_equal(back, img)
        pts = np.array([[1.5, 2.0], [4.0, 0.5]])
        np.testing.assert_allclose(tk.inverse().apply_coords(tk.apply_coords(pts.copy())), pts)


def test_resize_keeps_masks_on_their_instances(tmp_path):
    record, labels, values = _dataset(tmp_path, "resize")
    out = _mapper([T.ResizeTransform(H, W, 2 * H, 2 * W)])(record)
    raw = np.rint(out["image"][0].numpy().astype(np.float64) * 65535)
    assert out["image"].shape == (7, 2 * H, 2 * W)
    masks = out["instances"].gt_masks.tensor.numpy()
    assert len(masks) == len(values)
    upsampled = np.repeat(np.repeat(labels, 2, axis=0), 2, axis=1)  # exact 2x nearest
    checked = 0
    for mask, (label, v) in zip(masks, sorted(values.items())):
        np.testing.assert_array_equal(mask, upsampled == label)
        # Pixels whose bilinear neighbours are all inside the instance (eroded, so that
        # a blend of two neighbours that happens to equal v does not count).
        pure = ndimage.binary_erosion(raw == v, np.ones((3, 3)))
        if pure.any():  # a tiny instance has no pure core after erosion
            assert mask[pure].all()  # the mask covers the instance's core in the image
            checked += 1
    assert checked >= 0.8 * len(values)


def _cfg(channels: int, **input_keys):
    cfg = get_dama_cfg()
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.PIXEL_MEAN = [0.0] * channels
    cfg.MODEL.PIXEL_STD = [1.0] * channels
    for key, value in input_keys.items():
        node = cfg.INPUT
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return cfg


def test_from_config_training_pipeline_many_instances(tmp_path):
    """LSJ at scale 1 (exact) + pad + random flips/rotations, > 100 instances."""
    from tests.helpers.label_images import random_label_image

    labels = random_label_image(3, shape=(96, 120), n_cells=140)
    record, _, values = _dataset(tmp_path, "many", labels=labels)
    assert len(record["annotations"]) == len(values) > 100
    cfg = _cfg(7, **{"LSJ.IMAGE_SIZE": 120, "LSJ.SCALE_RANGE": (1.0, 1.0)})
    mapper = NChannelDatasetMapper(cfg, is_train=True)
    np.random.seed(3)
    for _ in range(4):
        out = mapper(record)
        assert tuple(out["image"].shape) == (7, 120, 120)
        assert _check_aligned(out, values, 7, 65535, CHANNEL_STEP) == len(values)


def test_native_scale_jitter_keeps_the_pixel_size_that_inference_sees(tmp_path):
    """LSJ 'native' scales the image's own size; 'fit' first fits it into the crop."""
    image = np.zeros((72, 100, 3), np.float32)
    for lo, hi, shape in ((1.0, 1.0, (72, 100)), (0.5, 0.5, (36, 50)), (2.0, 2.0, (144, 200))):
        t = NativeScaleJitter(lo, hi).get_transform(image)
        assert t.apply_image(image).shape == (*shape, 3)
    np.random.seed(0)
    sizes = {NativeScaleJitter(0.5, 1.5).get_transform(image).new_h for _ in range(50)}
    assert min(sizes) >= 36 and max(sizes) <= 108 and len(sizes) > 10
    with pytest.raises(ValueError, match="scale range"):
        NativeScaleJitter(0.0, 1.0)
    # through the config: a 72 x 100 image, 64 px crops, scale exactly 1
    record, _, values = _dataset(tmp_path, "native", n=25)
    native = NChannelDatasetMapper(_cfg(7, **{"LSJ.IMAGE_SIZE": 64, "LSJ.SCALE_RANGE": (1.0, 1.0)}),
                                   is_train=True)  # the default mode
    assert type(native.augmentations.augs[0]).__name__ == "NativeScaleJitter"
    np.random.seed(1)
    out = native(record)
    assert tuple(out["image"].shape) == (7, 64, 64)
    _check_aligned(out, values, 7, 65535, CHANNEL_STEP)  # exact at the native pixel size
    fit = NChannelDatasetMapper(_cfg(7, **{"LSJ.IMAGE_SIZE": 64, "LSJ.SCALE_RANGE": (1.0, 1.0),
                                           "LSJ.MODE": "fit"}), is_train=True)
    t = fit.augmentations.augs[0].get_transform(np.zeros((72, 100, 7), np.float32))
    assert (t.new_h, t.new_w) == (46, 64)  # ViTDet's 'fit': shrunk by 64 / 100 first
    with pytest.raises(DamaUserError, match="INPUT.LSJ.MODE"):
        NChannelDatasetMapper(_cfg(7, **{"LSJ.MODE": "fitt"}), is_train=True)


@pytest.mark.parametrize("channels,dtype", [(7, np.uint16), (1, np.uint8)])
def test_from_config_full_lsj_pipeline(tmp_path, channels, dtype):
    record, _, values = _dataset(tmp_path, f"lsj{channels}", channels, dtype, n=30)
    cfg = _cfg(channels, **{"LSJ.IMAGE_SIZE": 64, "LSJ.SCALE_RANGE": (0.3, 2.0)})
    mapper = NChannelDatasetMapper(cfg, is_train=True)
    assert [type(a).__name__ for a in mapper.augmentations.augs] == [
        "NativeScaleJitter", "FixedSizeCrop", "RandomFlip", "RandomFlip", "RandomRot90"]
    np.random.seed(0)
    for _ in range(6):
        out = mapper(record)
        img = out["image"]
        assert tuple(img.shape) == (channels, 64, 64) and img.dtype == torch.float32
        assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0
        inst = out["instances"]
        masks = inst.gt_masks.tensor
        assert masks.dtype == torch.bool and masks.shape[1:] == (64, 64)
        assert masks.flatten(1).any(1).all()  # empty instances were dropped
        for mask, box in zip(masks.numpy(), inst.gt_boxes.tensor.numpy()):
            ys, xs = np.nonzero(mask)
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            # The mask sits on its instance: most of its pixels are bright.
            assert (img[0].numpy()[mask] > 0).mean() > 0.6


def test_inference_mapping_only_scales(tmp_path):
    record, labels, _ = _dataset(tmp_path, "infer")
    raw, _ = _paint(labels, 7, np.uint16)
    cfg = _cfg(7)
    out = NChannelDatasetMapper(cfg, is_train=False)(record)
    assert "instances" not in out and "annotations" not in out
    assert out["image"].dtype == torch.float32
    np.testing.assert_allclose(out["image"].numpy(), raw / 65535.0, rtol=1e-6)
    cfg.INPUT.INTENSITY_SCALING = "percentile"
    cfg.INPUT.PERCENTILE_RANGE = (2.0, 98.0)
    out = NChannelDatasetMapper(cfg, is_train=False)(record)
    np.testing.assert_allclose(out["image"].numpy(),
                               percentile_normalize(raw.astype(np.float32), 2.0, 98.0), rtol=1e-5)
    assert record["annotations"]  # the mapper does not modify the dataset's dicts


def test_mapper_errors_name_the_file(tmp_path):
    record, _, _ = _dataset(tmp_path, "errs")
    with pytest.raises(DamaUserError, match=r"img.ome.tif: image has 7 channel\(s\) but 3"):
        NChannelDatasetMapper(_cfg(3), is_train=True)(record)
    bad = dict(record, height=H + 1)
    with pytest.raises(DamaUserError, match=f"img.ome.tif: image is {H}x{W} but the dataset"):
        NChannelDatasetMapper(_cfg(7), is_train=True)(bad)
    nan = np.ones((7, 8, 8), np.float32)
    nan[2, 1, 1] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    with pytest.raises(DamaUserError, match="nan.tif: image contains NaN"):
        NChannelDatasetMapper(_cfg(7), is_train=False)({"file_name": str(tmp_path / "nan.tif")})
    with pytest.raises(DamaUserError, match="INPUT.FORMAT"):
        NChannelDatasetMapper(_cfg(7, FORMAT="BGR"), is_train=True)
    with pytest.raises(DamaUserError, match="INPUT.INTENSITY_SCALING"):
        NChannelDatasetMapper(_cfg(7, INTENSITY_SCALING="zscore"), is_train=True)


def test_register_is_idempotent_and_dicts_are_detectron2_style(tmp_path):
    record, labels, values = _dataset(tmp_path, "reg")
    gt = tmp_path / "reg.json"
    register_nchannel_coco("reg", gt)  # again: replaces, no error
    register_nchannel_coco("reg", gt)
    meta = MetadataCatalog.get("reg")
    assert meta.thing_classes == ["cell"] and meta.evaluator_type == "coco"
    assert meta.json_file == str(gt.resolve())
    assert meta.thing_dataset_id_to_contiguous_id == {1: 0}
    (d,) = load_nchannel_coco_dicts(gt)
    assert d["file_name"] == str((tmp_path / "reg" / "img.ome.tif").resolve())
    assert (d["height"], d["width"], d["image_id"]) == (H, W, 1)
    assert len(d["annotations"]) == len(values)
    a = d["annotations"][0]
    assert a["bbox_mode"] == BoxMode.XYWH_ABS and a["category_id"] == 0
    assert isinstance(a["segmentation"], dict) and isinstance(a["segmentation"]["counts"], str)
    with pytest.raises(DamaUserError, match="missing.json"):
        register_nchannel_coco("reg2", tmp_path / "missing.json")


def test_mapper_output_feeds_detectron2_vit_backbone(tmp_path):
    from detectron2.modeling import SimpleFeaturePyramid, ViT
    from detectron2.modeling.backbone.vit import get_vit_lr_decay_rate

    record, _, _ = _dataset(tmp_path, "vit", shape=(64, 64), n=10)
    out = NChannelDatasetMapper(_cfg(7), is_train=False)(record)
    vit = ViT(img_size=64, patch_size=16, in_chans=7, embed_dim=64, depth=2, num_heads=2,
              window_size=2, window_block_indexes=[0], use_rel_pos=True, pretrain_img_size=64)
    fpn = SimpleFeaturePyramid(vit, "last_feat", out_channels=32,
                               scale_factors=(4.0, 2.0, 1.0, 0.5), norm="LN")
    with torch.no_grad():
        feats = fpn(out["image"][None])
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "p2": (1, 32, 16, 16), "p3": (1, 32, 8, 8), "p4": (1, 32, 4, 4), "p5": (1, 32, 2, 2)}
    assert get_vit_lr_decay_rate("backbone.net.blocks.1.attn.qkv.weight", 0.7, 2) == 0.7


def test_dsb2018_loads_through_to_coco_and_the_mapper(dsb2018_dir, tmp_path):
    """Real 1-channel data: the image with the most nuclei (313) maps exactly."""
    import shutil

    from dama_det.cli import main
    from dama_det.data.tiff_io import read_label_image

    folder = tmp_path / "dsb"
    folder.mkdir()
    name = "07fb37aafa662660"
    for suffix in (".tif", "_masks.tif"):
        shutil.copy(dsb2018_dir / "train" / f"{name}{suffix}", folder)
    gt = tmp_path / "dsb.json"
    assert main(["data", "to-coco", str(folder), "--out", str(gt), "--channels", "1",
                 "--quiet"]) == 0
    register_nchannel_coco("dsb_test", gt)
    (record,) = DatasetCatalog.get("dsb_test")
    labels = read_label_image(folder / f"{name}_masks.tif")
    ids = np.unique(labels)[1:]
    assert len(record["annotations"]) == len(ids) == 313

    out = _mapper([], channels=1)(record)
    assert tuple(out["image"].shape) == (1,) + labels.shape
    raw = tifffile.imread(folder / f"{name}.tif")
    np.testing.assert_allclose(out["image"][0].numpy(), raw / 255.0, rtol=1e-6)
    masks = out["instances"].gt_masks.tensor.numpy()
    assert len(masks) == 313
    for mask, label in zip(masks[::20], ids[::20]):
        np.testing.assert_array_equal(mask, labels == label)

    cfg = _cfg(1)
    cfg.INPUT.CHANNEL_NAMES = ["nuclei"]
    np.random.seed(1)
    out = NChannelDatasetMapper(cfg, is_train=True)(record)
    assert tuple(out["image"].shape) == (1, 256, 256)
    assert len(out["instances"]) > 0


def test_overlapping_instances_take_the_per_mask_path(tmp_path):
    """Overlapping COCO masks cannot share a label map: each mask is transformed alone."""
    from dama_det.data.coco_labels import label_image_to_annotations

    write_ome_tiff(tmp_path / "o.ome.tif", np.ones((7, 20, 30), np.uint16))
    squares = []
    for y0, x0, y1, x1 in [(2, 2, 12, 14), (6, 8, 18, 20), (1, 25, 4, 29)]:
        m = np.zeros((20, 30), np.int32)
        m[y0:y1, x0:x1] = 1
        squares.append(m)
    annos = [dict(label_image_to_annotations(m, 1)[0], bbox_mode=BoxMode.XYWH_ABS,
                  category_id=0) for m in squares]
    record = {"file_name": str(tmp_path / "o.ome.tif"), "height": 20, "width": 30,
              "image_id": 1, "annotations": annos}
    crop = T.CropTransform(8, 0, 22, 20)  # the flipped third square falls outside
    out = _mapper([T.HFlipTransform(30), crop])(record)
    inst = out["instances"]
    assert len(inst) == 2
    for mask, box, m in zip(inst.gt_masks.tensor.numpy(), inst.gt_boxes.tensor.numpy(), squares):
        expected = np.fliplr(m)[:, 8:].astype(bool)
        np.testing.assert_array_equal(mask, expected)
        ys, xs = np.nonzero(expected)
        np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def test_channel_name_mismatch_warns_and_mapper_pickles(tmp_path, caplog):
    import logging
    import pickle

    names = ["DAPI", "Histones", "NeuN", "S100", "Olig2", "Iba1", "RECA1"]
    write_ome_tiff(tmp_path / "a.ome.tif", np.ones((7, 16, 16), np.uint16), names[::-1])
    record = {"file_name": str(tmp_path / "a.ome.tif"), "height": 16, "width": 16}
    mapper = NChannelDatasetMapper(_cfg(7, CHANNEL_NAMES=names), is_train=True)
    mapper = pickle.loads(pickle.dumps(mapper))  # DataLoader workers get a copy
    with caplog.at_level(logging.WARNING, logger="dama_det.data.mapper"):
        mapper(dict(record))
        mapper(dict(record))
    warnings = [r for r in caplog.records if "differ from INPUT.CHANNEL_NAMES" in r.message]
    assert len(warnings) == 1 and "a.ome.tif" in warnings[0].message


def test_boxes_only_mode_transforms_annotated_boxes(tmp_path):
    record, labels, values = _dataset(tmp_path, "boxes")
    mapper = NChannelDatasetMapper(is_train=True, augmentations=[Rot90Transform(H, W, 1)],
                                   num_channels=7, use_instance_mask=False)
    inst = mapper(record)["instances"]
    assert not inst.has("gt_masks") and len(inst) == len(values)
    rotated = np.rot90(labels)
    for box, label in zip(inst.gt_boxes.tensor.numpy(), sorted(values)):
        ys, xs = np.nonzero(rotated == label)
        np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def test_without_lsj_uses_detectron2_crop_and_resize_shortest_edge(tmp_path):
    record, _, values = _dataset(tmp_path, "nolsj")
    cfg = _cfg(7, **{"LSJ.ENABLED": False, "CROP.ENABLED": True, "CROP.TYPE": "absolute",
                     "CROP.SIZE": (40, 50), "MIN_SIZE_TRAIN": (40,), "MAX_SIZE_TRAIN": 1000})
    mapper = NChannelDatasetMapper(cfg, is_train=True)
    assert [type(a).__name__ for a in mapper.augmentations.augs] == [
        "RandomCrop", "ResizeShortestEdge", "RandomFlip", "RandomFlip", "RandomRot90"]
    np.random.seed(5)
    for _ in range(3):
        out = mapper(record)  # crop 40 x 50, shortest edge already 40: exact pixels
        assert sorted(out["image"].shape[1:]) == [40, 50]
        assert _check_aligned(out, values, 7, 65535, CHANNEL_STEP) > 0
