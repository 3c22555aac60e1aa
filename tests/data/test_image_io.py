import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cifake_lightning.data.image_io import decode_image_bytes, load_image
from cifake_lightning.errors import ImageDecodeError


def _encode(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _rgb(size=32, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_rgb_jpeg_roundtrip(tmp_path):
    p = tmp_path / "a.jpg"
    p.write_bytes(_encode(_rgb(), quality=100))
    arr = load_image(p)
    assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA", "I;16", "1"])
def test_modes_become_rgb(mode):
    img = _rgb().convert("RGBA" if mode in ("RGBA", "LA") else "RGB")
    img = (
        img.convert(mode)
        if mode != "I;16"
        else Image.fromarray((np.arange(1024).reshape(32, 32) * 60).astype(np.uint16))
    )
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    arr = decode_image_bytes(_encode(img, fmt), "x")
    assert arr.shape == (32, 32, 3)


def test_rgba_alpha_composited_on_black():
    img = Image.new("RGBA", (32, 32), (255, 255, 255, 0))
    arr = decode_image_bytes(_encode(img, "PNG"), "t.png")
    assert arr.max() == 0


def test_sixteen_bit_scaled_not_clipped():
    a = np.full((32, 32), 65535, dtype=np.uint16)
    arr = decode_image_bytes(_encode(Image.fromarray(a), "PNG"), "x.png")
    assert arr.min() == 255


@pytest.mark.parametrize(
    "data,reason",
    [(b"", "empty"), (b"hello, I am text", "not an image"), (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "")],
)
def test_bad_bytes_raise_project_error(data, reason):
    with pytest.raises(ImageDecodeError) as e:
        decode_image_bytes(data, "bad.jpg")
    assert "bad.jpg" in str(e.value) and reason in str(e.value)


def test_truncated_jpeg_names_file(tmp_path):
    data = _encode(_rgb(seed=3), quality=95)
    p = tmp_path / "trunc.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="trunc.jpg"):
        load_image(p)


def test_wrong_size_refused_unless_resize_policy():
    data = _encode(_rgb(64), "PNG")
    with pytest.raises(ImageDecodeError, match="64x64, expected 32x32"):
        decode_image_bytes(data, "big.png")
    arr = decode_image_bytes(data, "big.png", resize="area")
    assert arr.shape == (32, 32, 3)


def test_area_resize_averages_blocks():
    a = np.zeros((64, 64, 3), dtype=np.uint8)
    a[::2, ::2] = 255  # one bright pixel per 2x2 block -> mean 63.75
    arr = decode_image_bytes(_encode(Image.fromarray(a), "PNG"), "p.png", resize="area")
    assert np.all(np.abs(arr.astype(int) - 64) <= 1)


def test_decompression_bomb_refused():
    # a PNG header claiming 100k x 100k pixels: refused from the header, before any allocation
    img = Image.new("1", (1, 1))
    data = bytearray(_encode(img, "PNG"))
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data[8:33] = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    with pytest.raises(ImageDecodeError, match="pixel limit|bomb"):
        decode_image_bytes(bytes(data), "bomb.png", resize="area")


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(ImageDecodeError, match="directory"):
        load_image(tmp_path)
    with pytest.raises(ImageDecodeError, match="cannot read"):
        load_image(tmp_path / "nope.jpg")


def test_fifo_and_devices_are_refused_at_once(tmp_path):
    """A FIFO would block a read forever and /dev/zero never ends: only regular files are read."""

    from cifake_lightning.data.image_io import read_image_file

    fifo = tmp_path / "photo.png"
    os.mkfifo(fifo)
    for p in (fifo, Path("/dev/zero")):
        with pytest.raises(ImageDecodeError, match="not a regular file"):
            load_image(p)
    with pytest.raises(ImageDecodeError, match="not a regular file"):
        read_image_file("/dev/zero")


def test_byte_limit_applies_to_bytes_read(tmp_path, monkeypatch):
    from cifake_lightning.data import image_io

    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"\0" * 2000)
    monkeypatch.setattr(image_io, "MAX_FILE_BYTES", 1000)
    with pytest.raises(ImageDecodeError, match="over the 1,000-byte limit"):
        image_io.read_image_file(big)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (32, 32))
    img.paste((255, 0, 0), (0, 0, 32, 8))  # red band at the top as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the band is on the right
    p = tmp_path / "phone.jpg"
    img.save(p, quality=95, exif=exif)
    arr = load_image(p)
    assert arr[16, 28, 0] > 200 and arr[16, 2, 0] < 60 and arr[2, 16, 0] < 60


def test_animated_gif_warns_that_only_the_first_frame_is_used(tmp_path):
    from cifake_lightning.data.image_io import ImageWarning

    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0))]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    with pytest.warns(ImageWarning, match="2 frames; only the first"):
        arr = load_image(p)
    assert arr[0, 0, 0] > 200 and arr[0, 0, 1] < 60


MODES = ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "1", "F"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(min_size=0, max_size=2048))
def test_random_bytes_decode_or_raise_project_error(data):
    try:
        arr = decode_image_bytes(data, "fuzz.jpg", resize="area")
    except ImageDecodeError:
        return
    assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=st.integers(1, 300),
    h=st.integers(1, 300),
    mode=st.sampled_from(MODES),
    fmt=st.sampled_from(["PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF"]),
    strict=st.booleans(),
    cut=st.one_of(st.none(), st.floats(0.05, 0.95)),
)
def test_random_images_decode_or_raise_project_error(w, h, mode, fmt, strict, cut):
    rng = np.random.default_rng(w * 1000 + h)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(
        mode if mode not in ("I;16", "F") else "L"
    )
    if mode in ("I;16", "F"):
        img = img.convert("I" if mode == "I;16" else "F")
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot store this mode; nothing to test
    data = buf.getvalue()
    if cut is not None:
        data = data[: int(len(data) * cut)]
    try:
        arr = decode_image_bytes(data, "x", resize=None if strict else "area")
    except ImageDecodeError:
        return
    assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8
