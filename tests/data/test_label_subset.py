"""Labelled subsets for few-label experiments: whole images, seeded, nested, shared."""
from __future__ import annotations

import json

import pytest

from dama_det.data.label_subset import label_subset, write_label_subset
from dama_det.errors import DamaUserError


def _coco(n_images: int = 20) -> dict:
    images = [{"id": i + 1, "file_name": f"img{i}.tif", "height": 8, "width": 8}
              for i in range(n_images)]
    annotations = [{"id": 100 * im["id"] + k, "image_id": im["id"], "category_id": 1,
                    "segmentation": [[1, 1, 4, 1, 4, 4, 1, 4]], "bbox": [1, 1, 3, 3], "area": 9,
                    "iscrowd": 0}
                   for im in images for k in range(im["id"] % 3 + 1)]
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "cell"}]}


def test_subset_keeps_whole_images_and_is_nested_and_seeded():
    coco = _coco(20)
    small, large = label_subset(coco, 0.1, seed=4), label_subset(coco, 0.25, seed=4)
    ids_small = {im["id"] for im in small["images"]}
    ids_large = {im["id"] for im in large["images"]}
    assert len(ids_small) == 2 and len(ids_large) == 5 and ids_small < ids_large
    for sub, ids in ((small, ids_small), (large, ids_large)):
        expected = [a for a in coco["annotations"] if a["image_id"] in ids]
        assert sub["annotations"] == expected  # every instance of a kept image, no other
        assert sub["categories"] == coco["categories"]
    assert label_subset(coco, 0.1, seed=4) == small  # same seed: same images for every method
    assert {im["id"] for im in label_subset(coco, 0.1, seed=5)["images"]} != ids_small
    assert small["info"] == {"label_fraction": 0.1, "label_seed": 4}
    assert len(label_subset(coco, 0.01, seed=0)["images"]) == 1  # never empty
    assert label_subset(coco, 1.0, seed=0)["images"] == coco["images"]
    assert len(coco["images"]) == 20  # input untouched


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_bad_fraction(fraction):
    with pytest.raises(DamaUserError, match="label fraction"):
        label_subset(_coco(), fraction, 0)


def test_written_subset_has_absolute_image_paths(tmp_path):
    src = tmp_path / "data" / "train.json"
    src.parent.mkdir()
    src.write_text(json.dumps(_coco(4)))
    out = write_label_subset(src, 0.5, 0, tmp_path / "elsewhere" / "sub.json")
    sub = json.loads(out.read_text())
    assert len(sub["images"]) == 2
    assert all(im["file_name"].startswith(str(src.parent.resolve())) for im in sub["images"])
