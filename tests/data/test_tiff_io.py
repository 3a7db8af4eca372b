"""TIFF / OME-TIFF reading and writing, and intensity scaling."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from dama_det.data.normalize import percentile_normalize, scale_by_dtype, scale_intensities
from dama_det.data.tiff_io import (
    TiffHeader,
    read_image,
    read_label_image,
    read_tiff,
    read_tiff_header,
    write_label_image,
    write_ome_tiff,
)
from dama_det.errors import DamaUserError

NAMES7 = ["DAPI", "Histones", "NeuN", "S100", "Olig2", "Iba1", "RECA1"]


def _random_image(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    return rng.random(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_ome_round_trip_keeps_values_names_and_dtype(tmp_path, dtype):
    img = _random_image(dtype, (7, 24, 40))
    names = ["DAPI & co", "Histones <H3>", "NeuN", "S100", "Olig2", "Iba1", 'RECA1 "x"']
    path = write_ome_tiff(tmp_path / "a.ome.tif", img, names)
    got = read_tiff(path)
    assert got.image.dtype == np.float32 and got.image.shape == (7, 24, 40)
    np.testing.assert_array_equal(got.image, img.astype(np.float32))
    assert got.channel_names == names
    assert got.dtype == np.dtype(dtype)
    image, names2 = read_image(path, expected_channels=7)
    np.testing.assert_array_equal(image, img.astype(np.float32))
    assert names2 == names
    assert [p.name for p in tmp_path.iterdir()] == ["a.ome.tif"]  # no temp file left


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_plain_tiff_cyx_and_yxc_give_the_same_chw(tmp_path, dtype):
    chw = _random_image(dtype, (7, 30, 44), seed=1)
    tifffile.imwrite(tmp_path / "cyx.tif", chw)
    tifffile.imwrite(tmp_path / "yxc.tif", np.moveaxis(chw, 0, -1))
    for name in ("cyx.tif", "yxc.tif"):
        got = read_tiff(tmp_path / name, expected_channels=7)
        np.testing.assert_array_equal(got.image, chw.astype(np.float32))
        assert got.channel_names == [f"ch{i}" for i in range(7)]
        assert got.dtype == np.dtype(dtype)


def test_yxc_ome_imagej_and_singleton_axes(tmp_path):
    chw = _random_image(np.uint16, (7, 20, 36), seed=2)
    # OME with samples last (YXS), ImageJ hyperstack (CYX), OME TCZYX with T = Z = 1.
    tifffile.imwrite(tmp_path / "yxs.ome.tif", np.moveaxis(chw, 0, -1), ome=True,
                     photometric="minisblack", planarconfig="contig", metadata={"axes": "YXS"})
    tifffile.imwrite(tmp_path / "ij.tif", chw, imagej=True, metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "t.ome.tif", chw[None, :, None], ome=True,
                     metadata={"axes": "TCZYX", "Channel": {"Name": NAMES7}})
    for name in ("yxs.ome.tif", "ij.tif", "t.ome.tif"):
        got = read_tiff(tmp_path / name)
        np.testing.assert_array_equal(got.image, chw.astype(np.float32), err_msg=name)
    assert read_tiff(tmp_path / "t.ome.tif").channel_names == NAMES7


def test_grey_2d_and_single_channel(tmp_path):
    grey = _random_image(np.uint8, (33, 17), seed=3)
    tifffile.imwrite(tmp_path / "g.tif", grey)
    write_ome_tiff(tmp_path / "g1.ome.tif", grey, ["nuclei"])
    got = read_tiff(tmp_path / "g.tif", expected_channels=1)
    assert got.image.shape == (1, 33, 17) and got.dtype == np.uint8
    np.testing.assert_array_equal(got.image[0], grey)
    got1 = read_tiff(tmp_path / "g1.ome.tif", expected_channels=1)
    np.testing.assert_array_equal(got1.image[0], grey)
    assert got1.channel_names == ["nuclei"]


def _error(fn, *args, **kwargs) -> str:
    with pytest.raises(DamaUserError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


@pytest.mark.filterwarnings("ignore:.*zero-size array:UserWarning")
def test_bad_images_give_clear_errors(tmp_path):
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + b"\x07" * 100)
    msg = _error(read_image, corrupt)
    assert str(corrupt) in msg and "cannot read as TIFF" in msg

    truncated = tmp_path / "truncated.tif"
    tifffile.imwrite(truncated, np.ones((4, 64, 64), np.uint16), photometric="minisblack")
    truncated.write_bytes(truncated.read_bytes()[:3000])
    msg = _error(read_image, truncated)
    assert str(truncated) in msg and "cannot read as TIFF" in msg

    not_tiff = tmp_path / "photo.tif"
    not_tiff.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 50)
    assert str(not_tiff) in _error(read_image, not_tiff)

    assert "no such file" in _error(read_image, tmp_path / "missing.tif")

    write_ome_tiff(tmp_path / "seven.ome.tif", np.zeros((7, 16, 16), np.uint16))
    msg = _error(read_image, tmp_path / "seven.ome.tif", expected_channels=3)
    assert "seven.ome.tif" in msg and "7 channel(s)" in msg and "3 are expected" in msg

    nan = np.ones((2, 8, 8), np.float32)
    nan[1, 3, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    msg = _error(read_image, tmp_path / "nan.tif")
    assert "nan.tif" in msg and "NaN" in msg
    inf = np.ones((8, 8), np.float32)
    inf[0, 0] = np.inf
    tifffile.imwrite(tmp_path / "inf.tif", inf)
    assert "Inf" in _error(read_image, tmp_path / "inf.tif")

    tifffile.imwrite(tmp_path / "empty.tif", np.zeros((0, 8), np.uint8))
    msg = _error(read_image, tmp_path / "empty.tif")
    assert "empty.tif" in msg


@pytest.mark.parametrize("fraction", [0.3, 0.8, 0.97])
def test_truncated_multipage_ome_tiff_is_corrupt_not_its_first_page(tmp_path, fraction):
    """tifffile reads what is left of a truncated uncompressed multi-page OME-TIFF (its
    first page: 1 channel instead of 7); the file must be an error naming it."""
    full = write_ome_tiff(tmp_path / "full.ome.tif", _random_image(np.uint16, (7, 64, 64)),
                          NAMES7, compression=None)
    data = full.read_bytes()
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(data[: int(len(data) * fraction)])
    for read in (read_tiff, read_tiff_header):
        msg = _error(read, cut)
        assert str(cut) in msg and ("corrupt or truncated TIFF" in msg
                                    or "cannot read as TIFF" in msg)
    assert read_tiff_header(full).channels == 7


def test_truncated_label_image_is_an_error(tmp_path):
    tifffile.imwrite(tmp_path / "m.tif", np.ones((3, 64, 64), np.uint16),
                     photometric="minisblack")
    data = (tmp_path / "m.tif").read_bytes()
    (tmp_path / "m.tif").write_bytes(data[: len(data) // 2])
    msg = _error(read_label_image, tmp_path / "m.tif")
    assert "m.tif" in msg and ("corrupt" in msg or "cannot read as TIFF" in msg)


def test_write_ome_tiff_rejects_wrong_names(tmp_path):
    msg = _error(write_ome_tiff, tmp_path / "x.ome.tif", np.zeros((3, 4, 4), np.uint8), ["a"])
    assert "1 channel names for 3 channels" in msg
    assert not list(tmp_path.iterdir())


def test_label_image_round_trip_and_errors(tmp_path):
    labels = np.zeros((20, 30), np.int32)
    labels[2:5, 3:9] = 7
    labels[10:15, 10:12] = 300
    write_label_image(tmp_path / "m.tif", labels)
    assert tifffile.imread(tmp_path / "m.tif").dtype == np.uint16
    got = read_label_image(tmp_path / "m.tif")
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, labels)

    big = labels.copy()
    big[0, 0] = 70000
    write_label_image(tmp_path / "big.tif", big)
    assert tifffile.imread(tmp_path / "big.tif").dtype == np.uint32
    np.testing.assert_array_equal(read_label_image(tmp_path / "big.tif"), big)

    tifffile.imwrite(tmp_path / "float_ok.tif", labels.astype(np.float32))
    np.testing.assert_array_equal(read_label_image(tmp_path / "float_ok.tif"), labels)
    tifffile.imwrite(tmp_path / "frac.tif", labels.astype(np.float32) + 0.5)
    assert "must hold integers" in _error(read_label_image, tmp_path / "frac.tif")
    tifffile.imwrite(tmp_path / "neg.tif", -labels.astype(np.int16))
    assert "negative" in _error(read_label_image, tmp_path / "neg.tif")
    tifffile.imwrite(tmp_path / "3d.tif", np.zeros((2, 5, 5), np.uint16))
    assert "must be 2-D, got shape (2, 5, 5)" in _error(read_label_image, tmp_path / "3d.tif")
    for shape in [(1, 1), (1, 1, 1), (1, 4, 3), (4, 3, 1)]:  # length-1 axes dropped, 2-D kept
        tifffile.imwrite(tmp_path / "unit.tif", np.ones(shape, np.uint16),
                         photometric="minisblack")
        expected = (1, 1) if shape.count(1) >= 2 else (4, 3)
        assert read_label_image(tmp_path / "unit.tif").shape == expected
    assert "no such file" in _error(read_label_image, tmp_path / "nope_masks.tif")


# ----------------------------------------------------------------------- scaling


def test_scale_by_dtype():
    raw = np.array([[[0, 255, 65535]]], np.float32)
    np.testing.assert_allclose(scale_by_dtype(raw, np.uint16), [[[0, 255 / 65535, 1]]], rtol=1e-6)
    np.testing.assert_allclose(scale_by_dtype(raw[..., :2], "uint8"), [[[0, 1]]], rtol=1e-6)
    floats = np.array([0.5, 3.0], np.float32)
    out = scale_by_dtype(floats, np.float32)
    np.testing.assert_array_equal(out, floats)
    assert out is not floats and out.dtype == np.float32


def test_percentile_normalize_per_channel():
    rng = np.random.default_rng(0)
    img = np.stack([rng.random((32, 32)) * 10, rng.random((32, 32)) * 1000 + 5,
                    np.full((32, 32), 3.0)]).astype(np.float32)
    out = percentile_normalize(img, 1.0, 99.8)
    assert out.dtype == np.float32 and out.shape == img.shape
    for c in range(2):
        lo, hi = np.percentile(img[c], [1.0, 99.8])
        np.testing.assert_allclose(out[c], (img[c] - lo) / (hi - lo), rtol=1e-4, atol=1e-5)
        assert np.isclose(np.percentile(out[c], 1.0), 0, atol=1e-5)
        assert np.isclose(np.percentile(out[c], 99.8), 1, atol=1e-4)
    np.testing.assert_array_equal(out[2], 0)  # constant channel: 0, not NaN
    with pytest.raises(DamaUserError, match="PERCENTILE_RANGE"):
        percentile_normalize(img, 50, 10)


def test_scale_intensities_dispatch():
    img = np.array([[[0, 100, 255]]], np.float32)
    np.testing.assert_allclose(scale_intensities(img, "dtype_max", np.uint8), img / 255)
    np.testing.assert_array_equal(scale_intensities(img, "none", np.uint8), img)
    pct = scale_intensities(img, "percentile", np.uint8, (0.0, 100.0))
    np.testing.assert_allclose(pct, [[[0, 100 / 255, 1]]], rtol=1e-6)
    with pytest.raises(DamaUserError, match="INPUT.INTENSITY_SCALING.*'zscore'"):
        scale_intensities(img, "zscore", np.uint8)


def test_three_and_four_channel_plain_tiffs(tmp_path):
    """tifffile stores 3-/4-plane arrays as RGB(A) samples; they still read as CYX."""
    for c in (3, 4):
        chw = _random_image(np.uint8, (c, 21, 26), seed=c)
        tifffile.imwrite(tmp_path / f"cyx{c}.tif", chw, photometric="rgb")
        tifffile.imwrite(tmp_path / f"yxc{c}.tif", np.moveaxis(chw, 0, -1), photometric="rgb")
        for name in (f"cyx{c}.tif", f"yxc{c}.tif"):
            np.testing.assert_array_equal(read_tiff(tmp_path / name, c).image, chw)


def test_ome_without_names_gets_default_names(tmp_path):
    write_ome_tiff(tmp_path / "n.ome.tif", np.zeros((3, 5, 6), np.uint8))
    assert read_tiff(tmp_path / "n.ome.tif").channel_names == ["ch0", "ch1", "ch2"]


def _write_layouts(folder) -> dict[str, tuple[int, int, int]]:
    """TIFFs of every layout read_tiff accepts, with the (C, H, W) each must give."""
    chw = _random_image(np.uint16, (7, 20, 36), seed=5)
    tifffile.imwrite(folder / "cyx.tif", chw)
    tifffile.imwrite(folder / "yxc.tif", np.moveaxis(chw, 0, -1))
    tifffile.imwrite(folder / "grey.tif", chw[0])
    write_ome_tiff(folder / "ome.ome.tif", chw, NAMES7)
    write_ome_tiff(folder / "ome1.ome.tif", chw[0])
    tifffile.imwrite(folder / "yxs.ome.tif", np.moveaxis(chw, 0, -1), ome=True,
                     photometric="minisblack", planarconfig="contig", metadata={"axes": "YXS"})
    tifffile.imwrite(folder / "ij.tif", chw, imagej=True, metadata={"axes": "CYX"})
    tifffile.imwrite(folder / "tczyx.ome.tif", chw[None, :, None], ome=True,
                     metadata={"axes": "TCZYX"})
    # ambiguous without axes: 3 x 5 x 6 is CYX (3 < 5), 6 x 5 x 3 is YXC
    tifffile.imwrite(folder / "small_cyx.tif", np.zeros((3, 5, 6), np.float32),
                     photometric="minisblack")
    tifffile.imwrite(folder / "small_yxc.tif", np.zeros((6, 5, 3), np.uint8),
                     photometric="minisblack", planarconfig="contig")
    # OME says CYX although the channel axis is not the smallest one: axes win
    write_ome_tiff(folder / "wide_c.ome.tif", np.zeros((9, 4, 30), np.uint8))
    tifffile.imwrite(folder / "bool.tif", np.ones((12, 10), bool))
    return {"cyx.tif": (7, 20, 36), "yxc.tif": (7, 20, 36), "grey.tif": (1, 20, 36),
            "ome.ome.tif": (7, 20, 36), "ome1.ome.tif": (1, 20, 36),
            "yxs.ome.tif": (7, 20, 36), "ij.tif": (7, 20, 36), "tczyx.ome.tif": (7, 20, 36),
            "small_cyx.tif": (3, 5, 6), "small_yxc.tif": (3, 6, 5),
            "wide_c.ome.tif": (9, 4, 30), "bool.tif": (1, 12, 10)}


def test_read_tiff_header_matches_read_tiff_on_every_layout(tmp_path):
    expected = _write_layouts(tmp_path)
    for name, shape in expected.items():
        header = read_tiff_header(tmp_path / name)
        full = read_tiff(tmp_path / name)
        assert isinstance(header, TiffHeader)
        assert header.shape == (header.channels, header.height, header.width) == shape, name
        assert full.image.shape == shape, name
        assert header.dtype == full.dtype and header.axes == full.axes, name
    assert read_tiff_header(tmp_path / "ome.ome.tif").dtype == np.uint16
    assert read_tiff_header(tmp_path / "tczyx.ome.tif").axes == "CYX"  # T, Z squeezed
    assert read_tiff_header(tmp_path / "bool.tif").dtype == bool


@pytest.mark.filterwarnings("ignore:.*zero-size array:UserWarning")
def test_read_tiff_header_errors_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + b"\x07" * 100)
    msg = _error(read_tiff_header, corrupt)
    assert str(corrupt) in msg and "cannot read as TIFF" in msg
    not_tiff = tmp_path / "photo.tif"
    not_tiff.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 50)
    assert "photo.tif: cannot read as TIFF" in _error(read_tiff_header, not_tiff)
    assert "no such file" in _error(read_tiff_header, tmp_path / "missing.tif")
    tifffile.imwrite(tmp_path / "empty.tif", np.zeros((0, 8), np.uint8))
    msg = _error(read_tiff_header, tmp_path / "empty.tif")
    assert "empty.tif" in msg and "empty" in msg
    tifffile.imwrite(tmp_path / "complex.tif", np.zeros((4, 4), np.complex64))
    msg = _error(read_tiff_header, tmp_path / "complex.tif")
    assert "complex.tif: unsupported pixel type complex64" in msg
    assert msg == _error(read_tiff, tmp_path / "complex.tif")
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 4, 8, 8), np.uint8),
                     photometric="minisblack")
    msg = _error(read_tiff_header, tmp_path / "stack.tif")
    assert "stack.tif: expected a 2-D or 3-D image" in msg
    assert msg == _error(read_tiff, tmp_path / "stack.tif")


def test_header_probes_of_the_datasets_agree_with_read_tiff(tmp_path):
    from dama_det.classification.dataset import probe_tiff
    from dama_det.data.crops import peek_image
    from dama_det.pretrain.dataset import inspect_crop

    for name, (c, h, w) in _write_layouts(tmp_path).items():
        dtype = read_tiff(tmp_path / name).dtype
        assert probe_tiff(tmp_path / name) == (c, (h, w), dtype), name
        assert peek_image(tmp_path / name) == (c, h, w, dtype), name
        assert inspect_crop(tmp_path / name) == (c, dtype), name


def test_unsqueezed_axes_follow_the_kept_dimensions(tmp_path):
    """tifffile squeezes series itself; the layout rules also accept unsqueezed arrays."""
    from dama_det.data.tiff_io import _chw_layout, _to_chw

    chw = _random_image(np.uint8, (3, 5, 6), seed=6)
    # T=1, Z=1 dropped; the named C axis (3, not the smallest after the drop) is kept
    tczyx = chw[None, :, None]
    assert _chw_layout(tczyx.shape, "TCZYX", tmp_path) == ((3, 5, 6), 0)
    np.testing.assert_array_equal(_to_chw(tczyx, "TCZYX", tmp_path), chw)
    yxc = np.moveaxis(chw, 0, -1)[None, None]
    assert _chw_layout(yxc.shape, "TZYXC", tmp_path) == ((5, 6, 3), 2)
    np.testing.assert_array_equal(_to_chw(yxc, None, tmp_path), chw)  # smallest axis
    assert _chw_layout((1, 1, 1, 4), "TZYX", tmp_path) == ((1, 4), None)
    with pytest.raises(DamaUserError, match=r"2-D or 3-D image, got shape \(2, 3, 5, 6\)"):
        _chw_layout((2, 3, 5, 6), "ZCYX", tmp_path)
