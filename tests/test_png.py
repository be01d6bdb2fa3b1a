"""Tests of dotamini10.png: exact bytes of a tiny file, lossless round trips, and agreement with OpenCV."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dotamini10 import png
from dotamini10.png import PngFallback, decode_png, encode_png
from dotamini10.read import ImageProbeError, decode_image


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == png.SIGNATURE
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + payload)
        out.append((kind, payload))
        pos += 12 + length
    return out


def _png_file(pixels_rgb: np.ndarray, kinds: list[int]) -> bytes:
    """A PNG written by hand with the given filter per row (NONE 0, SUB 1, UP 2), as a second opinion."""
    height, width, _ = pixels_rgb.shape
    rows = pixels_rgb.reshape(height, width * 3).astype(np.int64)
    raw = bytearray()
    for y, kind in enumerate(kinds):
        if kind == 0:
            filtered = rows[y]
        elif kind == 1:
            filtered = rows[y] - np.concatenate([[0, 0, 0], rows[y][:-3]])
        else:
            filtered = rows[y] - (rows[y - 1] if y else 0)
        raw += bytes([kind]) + bytes((filtered % 256).astype(np.uint8))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(bytes(raw), 9)
    # Three IDAT chunks: the decoder must join them.
    thirds = [data[: len(data) // 3], data[len(data) // 3 : 2 * len(data) // 3], data[2 * len(data) // 3 :]]
    return png.SIGNATURE + chunk(b"IHDR", ihdr) + b"".join(chunk(b"IDAT", t) for t in thirds) + chunk(b"IEND", b"")


def test_three_pixel_file_byte_by_byte():
    # BGR (10, 20, 30), (15, 20, 25), (1, 0, 255) is RGB (30, 20, 10), (25, 20, 15), (255, 0, 1).
    image = np.array([[[10, 20, 30], [15, 20, 25], [1, 0, 255]]], dtype=np.uint8)
    chunks = _chunks(encode_png(image))
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert chunks[0][1] == struct.pack(">IIBBBBB", 3, 1, 8, 2, 0, 0, 0)
    # SUB filter: the first pixel as is, then each sample minus the same channel of the pixel on its left,
    # modulo 256: 25-30 = 251, 20-20 = 0, 15-10 = 5; 255-25 = 230, 0-20 = 236, 1-15 = 242.
    assert list(zlib.decompress(chunks[1][1])) == [1, 30, 20, 10, 251, 0, 5, 230, 236, 242]
    assert chunks[2][1] == b""


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 40), width=st.integers(1, 40), level=st.integers(0, 3), seed=st.integers(0, 2**32 - 1)
)
def test_encode_is_lossless_for_opencv_and_for_our_decoder(tmp_path_factory, height, width, level, seed):
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    data = encode_png(image, compression=level)
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), image)
    path = tmp_path_factory.mktemp("png") / "x.png"
    path.write_bytes(data)
    assert np.array_equal(decode_png(path), image)


def test_encode_reads_window_views_and_rejects_bad_arrays():
    big = np.random.default_rng(1).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    view = big[5:25, 7:37]  # a window: rows are strided
    assert np.array_equal(cv2.imdecode(np.frombuffer(encode_png(view), np.uint8), cv2.IMREAD_UNCHANGED), view)
    with pytest.raises(ValueError, match="uint8"):
        encode_png(big.astype(np.uint16))
    with pytest.raises(ValueError, match="uint8"):
        encode_png(big[:, :, 0])
    with pytest.raises(ValueError, match="0..3"):
        encode_png(big, compression=4)


@pytest.mark.parametrize("kinds", [[0] * 7, [1] * 7, [2] * 7, [0, 1, 2, 2, 1, 0, 2], [2, 2, 1, 2, 0, 0, 1]])
@pytest.mark.parametrize("band_bytes", [1, 40, 1 << 21])  # one row per band, a few rows, everything at once
def test_decoder_reconstructs_none_sub_up_rows_across_bands(tmp_path, monkeypatch, kinds, band_bytes):
    monkeypatch.setattr(png, "_BAND_BYTES", band_bytes)
    rgb = np.random.default_rng(len(kinds) + sum(kinds)).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    path = tmp_path / "rows.png"
    path.write_bytes(_png_file(rgb, kinds))
    rows = []
    assert np.array_equal(decode_png(path, on_rows=rows.append), rgb[:, :, ::-1])
    assert rows == sorted(rows) and rows[-1] == 7  # progress only grows and ends at the height
    assert np.array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), rgb[:, :, ::-1])


@pytest.mark.parametrize(
    "flag, fast",
    [
        ("IMWRITE_PNG_FILTER_NONE", True),
        ("IMWRITE_PNG_FILTER_SUB", True),
        ("IMWRITE_PNG_FILTER_UP", True),
        ("IMWRITE_PNG_FILTER_AVG", False),
        ("IMWRITE_PNG_FILTER_PAETH", False),
    ],
)
def test_files_opencv_writes_decode_like_opencv(tmp_path, flag, fast):
    rng = np.random.default_rng(3)
    bgr = cv2.GaussianBlur(rng.integers(0, 256, (120, 90, 3), dtype=np.uint8), (5, 5), 0)
    bgra = np.dstack([bgr, rng.integers(0, 256, bgr.shape[:2], dtype=np.uint8)])
    for name, image in (("rgb.png", bgr), ("rgba.png", bgra)):
        path = tmp_path / name
        cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_FILTER, getattr(cv2, flag)])
        if fast:
            assert np.array_equal(decode_png(path), bgr)
        else:
            with pytest.raises(PngFallback, match="AVG or PAETH"):
                decode_png(path)
        assert np.array_equal(decode_image(path), bgr)  # the fallback gives the same pixels


def test_decode_into_a_memory_map(tmp_path):
    image = np.random.default_rng(4).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    (tmp_path / "a.png").write_bytes(encode_png(image))
    out = np.lib.format.open_memmap(tmp_path / "a.npy", mode="w+", dtype=np.uint8, shape=(30, 20, 3))
    assert decode_png(tmp_path / "a.png", out=out) is out
    del out
    assert np.array_equal(np.load(tmp_path / "a.npy"), image)
    with pytest.raises(ValueError, match="expected shape"):
        decode_png(tmp_path / "a.png", out=np.empty((20, 30, 3), np.uint8))


def test_other_formats_and_damaged_files_fall_back(tmp_path):
    image = np.random.default_rng(5).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "deep.png"), image.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "gray.png"), image[:, :, 0])
    cv2.imwrite(str(tmp_path / "photo.jpg"), image)
    for name, reason in (("deep.png", "bit depth 16"), ("gray.png", "colour type 0"), ("photo.jpg", "signature")):
        with pytest.raises(PngFallback, match=reason):
            decode_png(tmp_path / name)
    assert np.array_equal(decode_image(tmp_path / "deep.png"), image)  # OpenCV decodes what we hand over

    data = bytearray(encode_png(image))
    idat = data.index(b"IDAT")
    bad_crc = bytearray(data)
    bad_crc[idat + 10] ^= 0xFF  # a flipped byte inside the compressed data: the chunk CRC no longer matches
    (tmp_path / "crc.png").write_bytes(bytes(bad_crc))
    with pytest.raises(PngFallback, match="CRC"):
        decode_png(tmp_path / "crc.png")
    (tmp_path / "short.png").write_bytes(bytes(data[: idat + 60]))
    with pytest.raises(PngFallback, match="ends"):
        decode_png(tmp_path / "short.png")
    with pytest.raises(ImageProbeError) as caught:
        decode_image(tmp_path / "short.png")
    assert caught.value.reason == "unreadable_image"


def test_rgb_mode_skips_the_conversion_and_gives_the_same_file(tmp_path):
    bgr = np.random.default_rng(6).integers(0, 256, (25, 35, 3), dtype=np.uint8)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    assert encode_png(rgb, channels="rgb") == encode_png(bgr)
    (tmp_path / "a.png").write_bytes(encode_png(bgr))
    assert np.array_equal(decode_png(tmp_path / "a.png", channels="rgb"), rgb)
    cv2.imwrite(str(tmp_path / "a.jpg"), bgr)  # OpenCV decodes it; the conversion then happens once
    assert np.array_equal(decode_image(tmp_path / "a.jpg", channels="rgb"), decode_image(tmp_path / "a.jpg")[:, :, ::-1])
    with pytest.raises(ValueError, match="channels"):
        encode_png(bgr, channels="bgra")
    with pytest.raises(ValueError, match="channels"):  # not reported as an unreadable image
        decode_image(tmp_path / "a.png", channels="bgra")
