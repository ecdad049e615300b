"""offroad_core.imaging: every REP-118 encoding, padding, compressed images, bad input."""

import array

import numpy as np
import pytest

from offroad_core import imaging
from offroad_core.imaging import ImageDecodeError, decode_compressed, decode_image
from offroad_core.testing import png_bomb

H, W = 6, 8
LOSSLESS = ("rgb8", "bgr8", "rgba8", "bgra8")
YUV = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv", "nv12", "nv21")


def _random_rgb(h=H, w=W, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _pad(data: bytes, step: int, extra: int) -> tuple[int, bytes]:
    rows = len(data) // step
    padded = np.full((rows, step + extra), 0xAB, np.uint8)
    padded[:, :step] = np.frombuffer(data, np.uint8).reshape(rows, step)
    return step + extra, padded.tobytes()


@pytest.mark.parametrize("encoding", LOSSLESS)
def test_lossless_encodings_round_trip_exactly(encoding):
    rgb = _random_rgb()
    step, data = imaging.encode_image(rgb, encoding)
    assert step == W * (4 if "a" in encoding[-2:] else 3)
    np.testing.assert_array_equal(decode_image(encoding, H, W, step, data), rgb)


def test_channel_order_is_really_swapped_for_bgr():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 200  # pure red
    data = bytes([0, 0, 200]) * 4  # B, G, R
    np.testing.assert_array_equal(decode_image("bgr8", 2, 2, 6, data), rgb)
    np.testing.assert_array_equal(decode_image("BGRA8", 2, 2, 8, bytes([0, 0, 200, 9]) * 4), rgb)


def test_mono8_replicates_grey():
    grey = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    out = decode_image("mono8", H, W, W, grey.tobytes())
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


@pytest.mark.parametrize("encoding", YUV)
def test_yuv_encodings_reproduce_flat_colours(encoding):
    # chroma is subsampled: blocks of 2x2 one colour survive the round trip up to rounding
    colours = np.array([[200, 30, 60], [20, 180, 90], [40, 60, 220]], np.uint8)
    rgb = np.repeat(np.repeat(colours[np.arange(12).reshape(3, 4) % 3], 2, 0), 2, 1)
    step, data = imaging.encode_image(rgb, encoding)
    out = decode_image(encoding, 6, 8, step, data)
    assert out.shape == (6, 8, 3)
    assert np.abs(out.astype(int) - rgb).max() <= 6


def test_uyvy_and_yuyv_byte_orders_differ():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 2] = 255  # blue: U far from V
    _, uyvy = imaging.encode_image(rgb, "yuv422")
    _, yuyv = imaging.encode_image(rgb, "yuyv")
    assert uyvy != yuyv
    assert uyvy[1::2] == yuyv[0::2]  # Y samples sit at odd bytes in UYVY, even in YUYV
    wrong = decode_image("yuyv", 2, 2, 4, uyvy)
    assert np.abs(wrong.astype(int) - rgb).max() > 50


@pytest.mark.parametrize("encoding", [*LOSSLESS, "mono8", *YUV])
def test_padded_rows_decode_like_unpadded(encoding):
    rgb = _random_rgb()
    step, data = imaging.encode_image(rgb, encoding)
    expected = decode_image(encoding, H, W, step, data)
    pstep, padded = _pad(data, step, 12)
    np.testing.assert_array_equal(decode_image(encoding, H, W, pstep, padded), expected)


def test_rgb8_is_zero_copy_and_accepts_array_array():
    rgb = _random_rgb()
    buf = array.array("B", rgb.tobytes())
    out = decode_image("rgb8", H, W, W * 3, buf)
    assert np.shares_memory(out, np.frombuffer(buf, np.uint8))
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize(("args", "needle"), [
    (("bayer_rggb8", H, W, W, bytes(H * W)), "unsupported image encoding 'bayer_rggb8'"),
    (("rgb8", 0, W, W * 3, b""), "zero size"),
    (("rgb8", H, 0, 0, b""), "zero size"),
    (("rgb8", H, W, W * 3, bytes(H * W * 3 - 1)), "needs 144 bytes"),
    (("rgb8", H, W, W * 3 + 4, bytes(H * W * 3 + 4)), "needs 168 bytes"),
    (("rgb8", H, W, W * 3 - 1, bytes(H * W * 3)), "shorter than one row"),
    (("nv12", H, W, W, bytes(H * W)), "needs 72 bytes"),
    (("nv12", 5, W, W, bytes(100)), "even width and height"),
    (("yuv422", H, 7, 14, bytes(100)), "even width"),
])
def test_bad_raw_images_raise_clear_errors(args, needle):
    with pytest.raises(ImageDecodeError, match=needle):
        decode_image(*args)


def test_compressed_round_trip():
    rgb = _random_rgb(32, 48)
    png = imaging.encode_compressed(rgb, "png")
    np.testing.assert_array_equal(decode_compressed("png", png), rgb)
    smooth = np.zeros((32, 48, 3), np.uint8)
    smooth[:, :24] = (200, 40, 30)
    smooth[:, 24:] = (20, 90, 210)
    jpeg = imaging.encode_compressed(smooth, "jpeg", quality=95)
    out = decode_compressed("rgb8; jpeg compressed bgr8", jpeg)
    assert np.abs(out.astype(int) - smooth).mean() < 3


@pytest.mark.parametrize(("fmt", "mutate", "needle"), [
    ("jpeg", lambda b: b[: len(b) // 2], "corrupt jpeg: no EOI"),
    ("jpeg", lambda b: b"\x00\x00" + b[2:], "corrupt jpeg: no SOI"),
    ("jpeg", lambda b: b[:2] + bytes(len(b) - 4) + b[-2:], "corrupt jpeg"),
    ("jpeg", lambda b: b"", "empty jpeg"),
    ("png", lambda b: b[:40], "corrupt png"),
    ("tiff", lambda b: b, "unsupported compressed image format 'tiff'"),
])
def test_bad_compressed_images_raise_clear_errors(fmt, mutate, needle):
    good = imaging.encode_compressed(_random_rgb(16, 16), "png" if fmt == "png" else "jpeg")
    with pytest.raises(ImageDecodeError, match=needle):
        decode_compressed(fmt, mutate(good))


def test_resize_to_model_uses_area_when_shrinking_and_linear_when_enlarging():
    checker = np.zeros((4, 4, 3), np.uint8)
    checker[::2, ::2] = 255
    checker[1::2, 1::2] = 255
    small = imaging.resize_to_model(checker, 2, 2)
    assert small.shape == (2, 2, 3)
    assert np.all(small == 128)  # area average of two white, two black pixels
    big = imaging.resize_to_model(np.array([[[0] * 3, [200] * 3]], np.uint8), 4, 1)
    assert big.shape == (1, 4, 3)
    assert 0 < big[0, 1, 0] < big[0, 2, 0] < 200  # interpolated, not replicated
    same = _random_rgb()
    assert imaging.resize_to_model(same, W, H) is same


def test_resize_labels_keeps_class_ids():
    labels = np.random.default_rng(1).choice([0, 3, 6, 255], size=(54, 64)).astype(np.uint8)
    out = imaging.resize_labels(labels, 160, 136)
    assert out.shape == (136, 160)
    assert set(np.unique(out)) <= {0, 3, 6, 255}
    np.testing.assert_array_equal(imaging.resize_labels(out, 64, 54)[::4, ::4],
                                  labels[::4, ::4])


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A real 16x16 JPEG whose frame header is rewritten to declare ``width`` x ``height``."""
    data = bytearray(imaging.encode_compressed(_random_rgb(16, 16), "jpeg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 7] = height.to_bytes(2, "big")
    data[sof + 7:sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def test_declared_sizes_are_read_from_the_headers():
    rgb = _random_rgb(50, 70)
    for fmt in ("png", "jpeg"):
        assert imaging.compressed_size(fmt, imaging.encode_compressed(rgb, fmt)) == (70, 50)
    assert imaging.compressed_size("jpeg", _jpeg_declaring(12000, 9000)) == (12000, 9000)
    assert imaging.compressed_size("png", png_bomb(300, 200)) == (300, 200)


def test_decompression_bomb_is_refused_before_decoding(monkeypatch):
    bomb = png_bomb(12000, 12000)
    assert 400_000 < len(bomb) < 440_000  # the case: ~420 KB declaring 12000x12000

    def no_decode(*args):
        raise AssertionError("cv2.imdecode was called")
    monkeypatch.setattr(imaging.cv2, "imdecode", no_decode)
    for fmt, data in (("png", bomb), ("jpeg", _jpeg_declaring(12000, 12000))):
        with pytest.raises(ImageDecodeError, match="declares 12000x12000 pixels") as err:
            decode_compressed(fmt, data)
        assert err.value.reason == "too_large"


@pytest.mark.parametrize(("width", "height", "ok"), [
    (40, 25, True), (40, 26, False), (imaging.MAX_IMAGE_SIDE + 1, 1, False)])
def test_one_limit_for_raw_labels_and_compressed(width, height, ok):
    limit = 1000  # pixels, instead of the default 8K UHD
    side_only = width > imaging.MAX_IMAGE_SIDE
    calls = [
        lambda m: decode_image("rgb8", height, width, 3 * width, bytes(3 * width * height), m),
        lambda m: imaging.decode_labels("mono8", height, width, width, bytes(width * height), m),
    ]
    if not side_only:
        png = imaging.encode_compressed(np.zeros((height, width, 3), np.uint8), "png")
        calls.append(lambda m: decode_compressed("png", png, m))
    for call in calls:
        if ok:
            assert call(limit).shape[:2] == (height, width)
            continue
        with pytest.raises(ImageDecodeError) as err:
            call(imaging.MAX_DECODED_PIXELS if side_only else limit)
        assert err.value.reason == "too_large"


def test_absurd_declared_raw_size_is_too_large_not_truncated():
    with pytest.raises(ImageDecodeError, match="declares 12000x12000") as err:
        decode_image("rgb8", 12000, 12000, 36000, bytes(100))
    assert err.value.reason == "too_large"
    assert imaging.MAX_DECODED_PIXELS >= 7680 * 4320  # an 8K camera frame still decodes


@pytest.mark.parametrize(("fmt", "data", "needle"), [
    ("png", b"\x89PNG\r\n\x1a\n" + bytes(30), "no IHDR"),
    ("jpeg", b"\xff\xd8\xff\xda\x00\x02" + bytes(10) + b"\xff\xd9", "no frame header"),
    ("jpeg", b"\xff\xd8\x00\x11" + bytes(10) + b"\xff\xd9", "no marker at byte 2"),
    ("jpeg", _jpeg_declaring(0, 16), "declares 0x16"),
])
def test_missing_or_empty_headers_are_corrupt(fmt, data, needle):
    with pytest.raises(ImageDecodeError, match=needle) as err:
        decode_compressed(fmt, data)
    assert err.value.reason == "corrupt_compressed"
