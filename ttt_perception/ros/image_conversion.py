"""Image messages <-> RGB uint8 arrays.

``image_to_rgb`` and ``compressed_to_rgb`` read any object with the fields of ``sensor_msgs/Image`` or
``sensor_msgs/CompressedImage`` (rclpy messages, rosbags messages, plain test objects); they need no
running ROS graph. Every input the model cannot use raises ``ImageConversionError`` with the reason.

Supported raw encodings and how they become RGB uint8:

=========================  =====================================================================
rgb8, bgr8                 channel order fixed to RGB
rgba8, bgra8               alpha dropped
mono8                      grey replicated to three channels
mono16, rgb16, bgr16       linear full-range scale: ``value / 257`` (65535 -> 255)
32FC1, 32FC3               intensity in 0..1 (clipped) scaled to 0..255; NaN or inf is rejected
=========================  =====================================================================

``step`` (bytes per row, rows may be padded) and ``is_bigendian`` are honoured.
Compressed: anything PIL decodes (JPEG, PNG incl. 16-bit grey); ``compressedDepth`` is rejected.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np


class ImageConversionError(ValueError):
    """An image message that cannot become an RGB array; ``reason`` is a short key for counters."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class _Encoding(NamedTuple):
    channels: int
    dtype: str  # numpy type without byte order: u1, u2, f4
    order: str  # how channels map to RGB: "rgb", "bgr", "rgba", "bgra", "mono"


ENCODINGS = {
    "rgb8": _Encoding(3, "u1", "rgb"),
    "bgr8": _Encoding(3, "u1", "bgr"),
    "rgba8": _Encoding(4, "u1", "rgba"),
    "bgra8": _Encoding(4, "u1", "bgra"),
    "mono8": _Encoding(1, "u1", "mono"),
    "mono16": _Encoding(1, "u2", "mono"),
    "rgb16": _Encoding(3, "u2", "rgb"),
    "bgr16": _Encoding(3, "u2", "bgr"),
    "32FC1": _Encoding(1, "f4", "mono"),
    "32FC3": _Encoding(3, "f4", "rgb"),
}


def _to_bytes_view(data) -> np.ndarray:
    """The message's data as a flat uint8 array without copying (bytes, array.array, numpy, list)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)


def image_to_rgb(msg) -> np.ndarray:
    """``sensor_msgs/Image`` -> contiguous RGB uint8 array (H, W, 3), a copy independent of ``msg``."""
    encoding = str(msg.encoding)
    spec = ENCODINGS.get(encoding)
    if spec is None:
        raise ImageConversionError(
            "unknown_encoding",
            f"unsupported encoding '{encoding}' (supported: {', '.join(ENCODINGS)})")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError("zero_size", f"zero-size image ({width}x{height})")
    itemsize = np.dtype(spec.dtype).itemsize
    row_bytes = width * spec.channels * itemsize
    if step < row_bytes:
        raise ImageConversionError(
            "bad_step", f"step {step} is smaller than width x bytes per pixel = {row_bytes} ({encoding})")
    data = _to_bytes_view(msg.data)
    if data.size < step * height:
        raise ImageConversionError(
            "short_data", f"data has {data.size} bytes, fewer than step x height = {step} x {height} "
            f"= {step * height}")
    byte_order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype(spec.dtype).newbyteorder(byte_order) if itemsize > 1 else np.dtype(spec.dtype)
    # A strided view honours the row padding without copying; np.ndarray(buffer=...) also works on
    # the older numpy of Python 3.10 distributions.
    pixels = np.ndarray(shape=(height, width, spec.channels), dtype=dtype, buffer=data,
                        strides=(step, spec.channels * itemsize, itemsize))
    return _pixels_to_rgb(pixels, spec)


def _pixels_to_rgb(pixels: np.ndarray, spec: _Encoding) -> np.ndarray:
    if spec.dtype == "f4":
        values = pixels.astype(np.float32)
        if np.isnan(values).any():
            raise ImageConversionError("nan", "float image contains NaN")
        if not np.isfinite(values).all():
            raise ImageConversionError("nan", "float image contains infinite values")
        pixels = (np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif spec.dtype == "u2":
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if spec.order == "mono":
        rgb = np.repeat(pixels[:, :, :1], 3, axis=2)
    elif spec.order in ("bgr", "bgra"):
        rgb = pixels[:, :, 2::-1]
    else:
        rgb = pixels[:, :, :3]
    return np.array(rgb, dtype=np.uint8, order="C", copy=True)  # never a view of the message buffer


def compressed_to_rgb(msg) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (JPEG, PNG, ...) -> RGB uint8 array (H, W, 3)."""
    fmt = str(getattr(msg, "format", "") or "")
    if "compresseddepth" in fmt.lower():
        raise ImageConversionError("undecodable", f"format '{fmt}' is not supported (compressedDepth)")
    data = bytes(_to_bytes_view(msg.data))
    if not data:
        raise ImageConversionError("undecodable", "compressed image has no data")
    from PIL import Image as PILImage  # imported here so that raw-only users never pay for it

    try:
        with PILImage.open(io.BytesIO(data)) as img:
            img.load()
            array = _pil_to_rgb(img)
    except ImageConversionError:
        raise
    except Exception as exc:  # PIL raises several types for truncated or foreign data
        raise ImageConversionError(
            "undecodable", f"cannot decode compressed image (format '{fmt}', {len(data)} bytes): {exc}"
        ) from None
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageConversionError("zero_size", "decoded image has zero size")
    return array


def _pil_to_rgb(img) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(img).astype(np.int64)
        grey = ((np.clip(values, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if img.mode == "F":
        values = np.asarray(img, dtype=np.float32)
        if not np.isfinite(values).all():
            raise ImageConversionError("nan", "decoded float image contains NaN or infinite values")
        grey = (np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    return np.array(img.convert("RGB"), dtype=np.uint8, order="C", copy=True)  # writable, owned


class _Output(NamedTuple):
    channels: int
    dtype: str


_OUTPUTS = {
    "rgb8": _Output(3, "u1"), "bgr8": _Output(3, "u1"), "rgba8": _Output(4, "u1"),
    "bgra8": _Output(4, "u1"), "mono8": _Output(1, "u1"), "mono16": _Output(1, "u2"),
    "32FC1": _Output(1, "f4"), "32FC3": _Output(3, "f4"),
}


def rgb_to_image(rgb: np.ndarray, encoding: str = "rgb8", header=None, row_padding: int = 0,
                 bigendian: bool = False, msg=None):
    """RGB uint8 (H, W, 3) -> ``sensor_msgs/Image`` in ``encoding`` (for debug images, tests, bags).

    ``row_padding`` adds that many bytes at the end of every row (``step`` grows accordingly).
    Grey encodings use the mean of the channels; mono16 scales by 257; float encodings by 1/255.
    ``msg``: an empty message object to fill (e.g. a rosbags type); default ``sensor_msgs.msg.Image``.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 array (H, W, 3), got {rgb.dtype} {rgb.shape}")
    out = _OUTPUTS.get(encoding)
    if out is None:
        raise ValueError(f"cannot write encoding '{encoding}' (supported: {', '.join(_OUTPUTS)})")
    if encoding in ("bgr8", "bgra8"):
        pixels = rgb[:, :, ::-1]
    else:
        pixels = rgb
    if out.channels == 4:
        alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
        pixels = np.concatenate([pixels, alpha], axis=2)
    elif out.channels == 1:
        pixels = (rgb.astype(np.float32).mean(axis=2, keepdims=True) + 0.5).astype(np.uint8)
    if out.dtype == "u2":
        pixels = pixels.astype(np.uint16) * 257
    elif out.dtype == "f4":
        pixels = pixels.astype(np.float32) / 255.0
    if out.dtype != "u1":
        pixels = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<"))
    height, width = rgb.shape[:2]
    rows = np.ascontiguousarray(pixels).reshape(height, -1).view(np.uint8)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((height, row_padding), np.uint8)], axis=1)
    if msg is None:
        from sensor_msgs.msg import Image

        msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(height), int(width)
    msg.encoding = encoding
    msg.is_bigendian = 1 if (bigendian and out.dtype != "u1") else 0
    msg.step = int(rows.shape[1])
    msg.data = _as_message_bytes(np.ascontiguousarray(rows), msg)
    return msg


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "jpeg", header=None, quality: int = 90, msg=None):
    """RGB uint8 (H, W, 3) -> ``sensor_msgs/CompressedImage`` with ``format`` "jpeg" or "png"."""
    from PIL import Image as PILImage

    fmt = fmt.lower()
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"format must be 'jpeg' or 'png', got '{fmt}'")
    buffer = io.BytesIO()
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 array (H, W, 3), got {rgb.dtype} {rgb.shape}")
    image = PILImage.fromarray(np.ascontiguousarray(rgb))
    if fmt == "jpeg":
        image.save(buffer, format="JPEG", quality=int(quality))
    else:
        image.save(buffer, format="PNG")
    if msg is None:
        from sensor_msgs.msg import CompressedImage

        msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = fmt
    msg.data = _as_message_bytes(np.frombuffer(buffer.getvalue(), np.uint8), msg)
    return msg


def _as_message_bytes(array: np.ndarray, msg):
    # rclpy messages take bytes (fast path); rosbags messages want a numpy uint8 array.
    if type(msg).__module__.startswith("rosbags"):
        return array.reshape(-1).copy()
    return array.tobytes()


def describe(msg) -> str | None:
    """A short description of an image message for log lines: "640x480 rgb8" or "jpeg 12345 bytes"."""
    if hasattr(msg, "encoding"):
        return f"{getattr(msg, 'width', '?')}x{getattr(msg, 'height', '?')} {getattr(msg, 'encoding', '?')}"
    if hasattr(msg, "format"):
        return f"{getattr(msg, 'format', '?') or 'compressed'} {len(getattr(msg, 'data', b''))} bytes"
    return None
