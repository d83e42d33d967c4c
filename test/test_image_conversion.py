"""Image message <-> array conversion: every encoding, padding, byte order, and every rejected input."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage, Image

from ttt_perception.ros.image_conversion import (
    ENCODINGS,
    ImageConversionError,
    compressed_to_rgb,
    image_to_rgb,
    rgb_to_compressed,
    rgb_to_image,
)


def _rgb(height=5, width=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
@pytest.mark.parametrize("padding", [0, 3])
def test_colour_encodings_round_trip_exactly(encoding, padding):
    rgb = _rgb()
    msg = rgb_to_image(rgb, encoding, row_padding=padding)
    assert msg.step == 7 * ENCODINGS[encoding].channels + padding
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


def test_bgr8_bytes_are_in_bgr_order():
    rgb = np.zeros((1, 1, 3), np.uint8)
    rgb[0, 0] = (10, 20, 30)
    msg = rgb_to_image(rgb, "bgr8")
    assert bytes(msg.data) == bytes([30, 20, 10])


def test_mono8_is_replicated_to_three_channels():
    msg = Image(height=2, width=3, encoding="mono8", step=4, data=bytes([1, 2, 3, 99, 4, 5, 6, 99]))
    out = image_to_rgb(msg)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_honours_byte_order_and_scales_full_range(bigendian):
    values = np.array([[0, 257, 65535], [32896, 1000, 65280]], np.uint16)
    dtype = ">u2" if bigendian else "<u2"
    msg = Image(height=2, width=3, encoding="mono16", step=6, is_bigendian=int(bigendian),
                data=values.astype(dtype).tobytes())
    out = image_to_rgb(msg)
    np.testing.assert_array_equal(out[..., 1], [[0, 1, 255], [128, 4, 254]])


def test_mono16_written_big_endian_reads_back():
    rgb = np.full((3, 4, 3), 200, np.uint8)
    msg = rgb_to_image(rgb, "mono16", bigendian=True, row_padding=2)
    assert msg.is_bigendian == 1 and msg.step == 4 * 2 + 2
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


def test_float_images_convert_and_nan_is_rejected():
    rgb = _rgb(seed=1)
    np.testing.assert_array_equal(image_to_rgb(rgb_to_image(rgb, "32FC3")), rgb)
    grey = np.array([[0.0, 0.5, 1.0, 2.0]], np.float32)
    msg = Image(height=1, width=4, encoding="32FC1", step=16, data=grey.tobytes())
    np.testing.assert_array_equal(image_to_rgb(msg)[0, :, 0], [0, 128, 255, 255])
    grey[0, 1] = np.nan
    msg.data = grey.tobytes()
    with pytest.raises(ImageConversionError) as err:
        image_to_rgb(msg)
    assert err.value.reason == "nan" and "NaN" in str(err.value)


@pytest.mark.parametrize("encoding, step", [("bgra8", 9), ("rgb8", 6)])
def test_output_is_a_writable_contiguous_copy(encoding, step):
    class Plain:
        height, width, is_bigendian = 2, 2, 0
        data = bytearray(range(18))

    msg = Plain()
    msg.encoding, msg.step = encoding, step
    out = image_to_rgb(msg)
    assert out.flags["C_CONTIGUOUS"] and out.flags["WRITEABLE"]
    before = out.copy()
    msg.data[:] = bytes(18)
    np.testing.assert_array_equal(out, before)


def test_decoded_compressed_output_is_writable():
    assert compressed_to_rgb(rgb_to_compressed(_rgb(8, 8), "png")).flags["WRITEABLE"]


@pytest.mark.parametrize(
    "fields, reason, text",
    [
        (dict(height=2, width=2, encoding="yuv422", step=4, data=bytes(8)), "unknown_encoding", "yuv422"),
        (dict(height=2, width=2, encoding="rgb8", step=6, data=bytes(11)), "short_data", "fewer than"),
        (dict(height=0, width=2, encoding="rgb8", step=6, data=b""), "zero_size", "zero-size"),
        (dict(height=2, width=0, encoding="rgb8", step=0, data=b""), "zero_size", "zero-size"),
        (dict(height=2, width=2, encoding="rgb8", step=5, data=bytes(10)), "bad_step", "step 5"),
    ],
)
def test_bad_raw_images_raise_with_a_reason(fields, reason, text):
    with pytest.raises(ImageConversionError) as err:
        image_to_rgb(Image(**fields))
    assert err.value.reason == reason
    assert text in str(err.value)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_round_trip(fmt):
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[4:12, 6:18] = (200, 40, 90)
    msg = rgb_to_compressed(rgb, fmt)
    assert isinstance(msg, CompressedImage) and msg.format == fmt
    out = compressed_to_rgb(msg)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    error = np.abs(out.astype(int) - rgb.astype(int))
    if fmt == "png":
        assert error.max() == 0
    else:  # lossy: close on average, and the colour of the patch survives
        assert error.mean() < 4
        assert np.abs(out[8, 12].astype(int) - (200, 40, 90)).max() < 12


def test_sixteen_bit_png_becomes_eight_bit_grey():
    buffer = io.BytesIO()
    PILImage.fromarray(np.full((4, 5), 65535, np.uint16)).save(buffer, format="PNG")
    out = compressed_to_rgb(CompressedImage(format="png", data=buffer.getvalue()))
    assert out.shape == (4, 5, 3)
    assert (out == 255).all()


@pytest.mark.parametrize(
    "data, fmt",
    [
        (b"", "jpeg"),
        (b"definitely not an image", "jpeg"),
        (None, "jpeg"),  # a JPEG cut in half
        (bytes(20), "16UC1; compressedDepth"),
    ],
)
def test_undecodable_compressed_raises(data, fmt):
    if data is None:
        whole = bytes(rgb_to_compressed(_rgb(32, 32), "jpeg").data)
        data = whole[: len(whole) // 2]
    with pytest.raises(ImageConversionError) as err:
        compressed_to_rgb(CompressedImage(format=fmt, data=data))
    assert err.value.reason == "undecodable"


def test_plain_objects_with_image_fields_are_accepted():
    class Plain:
        height, width, encoding, step, is_bigendian = 1, 2, "rgb8", 6, 0
        data = np.arange(6, dtype=np.uint8)

    np.testing.assert_array_equal(image_to_rgb(Plain()).reshape(-1), np.arange(6))
