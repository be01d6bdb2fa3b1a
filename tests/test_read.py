"""Tests of dotamini10.read: label parsing and validation, header probing, decoding, release layout."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dotamini10.errors import DatasetError
from dotamini10.read import (
    ImageProbeError,
    decode_image,
    find_splits,
    outside_image,
    pair_files,
    parse_label_text,
    probe_image,
    read_label_file,
    to_bgr8,
)
from dotamini10.split import signed_area

GOOD = "10 10 20 10 20 20 10 20 plane 0"


def test_headers_objects_and_optional_difficult():
    text = "imagesource:GoogleEarth\ngsd:0.146\n" + GOOD + "\n\n30 30 40 30 40 40 30 40 ship\n"
    label = parse_label_text(text, file="a.txt")
    assert label.header == {"imagesource": "GoogleEarth", "gsd": "0.146"}
    assert label.lines.tolist() == [3, 5]
    assert label.categories == ["plane", "ship"]
    assert label.difficult.tolist() == [0, 0]
    assert label.coords[1].tolist() == [[30, 30], [40, 30], [40, 40], [30, 40]]
    assert label.invalid == [None, None]
    assert label.problems == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("10 10 20 10 20 20 10 plane 0", "token_count"),  # seven coordinates
        ("10 10 20 10 20 20 10 20 plane 0 extra", "token_count"),
        ("10 10 20 10 20 x 10 20 plane 0", "non_numeric"),
        ("10 10 20 10 20 20 10 nan plane 0", "non_numeric"),
        ("10 10 20 10 20 20 10 20 plane one", "non_numeric"),
        ("10 10 20 10 20 20 10 20 aeroplane 0", "unknown_category"),
        ("10 10 20 20 30 30 40 40 plane 0", "degenerate_polygon"),  # collinear: zero area
        ("10 10 10 10 10 10 10 10 plane 0", "degenerate_polygon"),
        ("10 10 20 20 20 10 10 20 plane 0", "self_intersecting"),  # bow tie
    ],
)
def test_each_bad_line_is_one_problem_naming_file_and_line(line, reason):
    label = parse_label_text(GOOD + "\n" + line + "\n", file="train/labelTxt/P1.txt")
    assert label.invalid == [None, reason]
    assert len(label.problems) == 1
    problem = label.problems[0]
    assert (problem.file, problem.line, problem.reason) == ("train/labelTxt/P1.txt", 2, reason)
    assert problem.message().startswith(f"train/labelTxt/P1.txt:2: {reason}")


def test_unreadable_label_file_is_a_problem_not_an_exception(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"\xff\xfe\x00garbage" + bytes(range(128, 256)))
    label = read_label_file(path, file="bad.txt")
    assert len(label) == 0
    assert [p.reason for p in label.problems] == ["unreadable_label"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="0123456789 .-abcdeplanship:\t", max_size=60), max_size=12))
def test_any_text_parses_without_exceptions_and_accounts_for_every_object_line(lines):
    label = parse_label_text("\n".join(lines), file="f.txt")
    assert len(label.categories) == len(label.lines) == len(label.invalid) == len(label.difficult)
    assert len(label.problems) == sum(r is not None for r in label.invalid)
    assert {p.line for p in label.problems} <= set(label.lines.tolist())


def test_signed_areas_and_outside_mask():
    coords = np.array([[[0, 0], [4, 0], [4, 3], [0, 3]], [[0, 0], [0, 3], [4, 3], [4, 0]]], dtype=float)
    assert [signed_area(ring) for ring in coords] == [12.0, -12.0]  # DOTA order (clockwise on screen) > 0
    shifted = coords + [[[0, 0]], [[97, 0]]]
    assert outside_image(shifted, 100, 100).tolist() == [False, True]  # x = 101 > 100


# ---------------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------------


def _write(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


@pytest.mark.parametrize(("suffix", "fmt"), [(".png", "png"), (".jpg", "jpeg"), (".tif", "tiff"), (".bmp", "bmp")])
def test_probe_reads_the_size_of_every_format(tmp_path, suffix, fmt):
    path = _write(tmp_path / f"a{suffix}", np.zeros((37, 53, 3), np.uint8))
    info = probe_image(path)
    assert (info.width, info.height, info.format) == (53, 37, fmt)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".bmp"])
def test_probe_detects_truncated_files(tmp_path, suffix):
    rng = np.random.default_rng(0)
    path = _write(tmp_path / f"a{suffix}", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageProbeError) as info:
        probe_image(path)
    assert info.value.reason == "truncated_image"


def test_probe_reads_a_20000_px_header_without_decoding(tmp_path):
    # A hand-made PNG announcing 20,000 x 20,000 px with a single tiny IDAT: decoding it would fail (or take
    # 1.2 GB); the probe only walks the chunk list.
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    path = tmp_path / "huge.png"
    path.write_bytes(data)
    info = probe_image(path)
    assert (info.width, info.height) == (20000, 20000)


def test_probe_rejects_non_images(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"this is not an image")
    with pytest.raises(ImageProbeError) as info:
        probe_image(path)
    assert info.value.reason == "unreadable_image"


def test_decode_converts_gray_16_bit_and_alpha_to_8_bit_bgr(tmp_path):
    gray = _write(tmp_path / "g.png", np.full((4, 5), 77, np.uint8))
    assert decode_image(gray).shape == (4, 5, 3)
    assert (decode_image(gray) == 77).all()
    deep = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    out = decode_image(_write(tmp_path / "d.png", deep))
    assert out[0, :, 0].tolist() == [0, 1, 128, 255]  # round(v * 255 / 65535)
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[..., 0], bgra[..., 2], bgra[..., 3] = 10, 200, 0  # fully transparent: alpha is dropped, colour kept
    out = decode_image(_write(tmp_path / "a.png", bgra))
    assert out.shape == (2, 2, 3) and out[0, 0].tolist() == [10, 0, 200]


def test_to_bgr8_maps_floats_and_rejects_odd_layouts():
    assert to_bgr8(np.array([[0.0, 0.5, 1.0, 2.0]], dtype=np.float32))[0, :, 0].tolist() == [0, 128, 255, 255]
    with pytest.raises(ImageProbeError):
        to_bgr8(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ImageProbeError):
        to_bgr8(np.zeros((2, 2), np.int32))


def test_decode_reports_corrupt_data(tmp_path):
    path = _write(tmp_path / "c.png", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start : start + 8] = b"\xde\xad\xbe\xef" * 2  # structure intact, compressed stream broken
    path.write_bytes(bytes(data))
    probe_image(path)  # the header walk cannot see it ...
    with pytest.raises(ImageProbeError) as info:  # ... the decoder does
        decode_image(path)
    assert info.value.reason == "unreadable_image"


# ---------------------------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------------------------


def _split_dir(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    return root


def test_find_splits_accepts_a_release_root_or_a_single_split(tmp_path):
    _split_dir(tmp_path / "rel" / "train")
    _split_dir(tmp_path / "rel" / "val")
    assert [s.name for s in find_splits(tmp_path / "rel")] == ["train", "val"]
    single = _split_dir(tmp_path / "one")
    (found,) = find_splits(single)
    assert (found.name, found.images, found.labels) == ("train", single / "images", single / "labelTxt")
    with pytest.raises(DatasetError, match="neither"):
        find_splits(tmp_path)
    with pytest.raises(DatasetError, match="not a directory"):
        find_splits(tmp_path / "missing")


def test_pair_files_matches_by_stem_and_reports_duplicates(tmp_path):
    root = _split_dir(tmp_path / "s")
    for name in ("a.png", "b.jpg", "b.png", "notes.md"):
        (root / "images" / name).write_bytes(b"")
    for name in ("a.txt", "c.txt"):
        (root / "labelTxt" / name).write_text("", encoding="utf-8")
    (source,) = find_splits(root)
    pairs, notes = pair_files(source)
    assert [(p.stem, p.image and p.image.name, p.label and p.label.name) for p in pairs] == [
        ("a", "a.png", "a.txt"),
        ("b", "b.jpg", None),
        ("c", None, "c.txt"),
    ]
    assert [(path.name, reason) for path, reason, _ in notes] == [("b.png", "duplicate_image")]
