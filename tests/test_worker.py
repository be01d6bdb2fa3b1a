"""Tests of dotamini10.worker: window crops, the per-worker image cache, and one unit end to end."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import shapely

from dotamini10 import worker
from dotamini10.worker import UnitResult, UnitSettings, UnitTask, crop_window, run_unit


def test_crop_inside_is_a_view_and_padding_fills_bottom_right():
    image = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    view = crop_window(image, np.array([1, 1, 4, 3]))
    assert np.shares_memory(view, image) and view.shape == (2, 3, 3)
    padded = crop_window(image, np.array([0, 0, 8, 7]), pad_value=9)
    assert padded.shape == (7, 8, 3)
    assert np.array_equal(padded[:5, :6], image)
    assert (padded[5:] == 9).all() and (padded[:, 6:] == 9).all()


def _task(tmp_path: Path, image: Path, size: tuple[int, int], windows, *, factor=1.0, scaled=None) -> UnitTask:
    settings = UnitSettings(tmp_path / "out", 0, 64, 0.7, 0, True, 1, 0.5, (0.0, 0.0, 0.0), "area", 1, 2)
    for sub in ("images", "labelTxt"):
        (tmp_path / "out" / sub / "train").mkdir(parents=True, exist_ok=True)
    geoms = shapely.polygons(np.array([[[4, 4], [20, 4], [20, 12], [4, 12]], [[70, 70], [80, 70], [80, 80], [70, 80]]],
                                      dtype=float) * factor)
    return UnitTask(
        split="train", stem=image.stem, image_path=image, image_size=size, factor=factor, tag="1",
        scaled_size=scaled or size, windows=np.array(windows), first_window=0, geoms=geoms,
        object_ids=np.array([0, 3]), categories=["plane", "helicopter"], difficult=np.array([0, 1]),
        augment=np.array([False, True]), settings=settings,
    )


def test_unit_writes_kept_windows_drops_empty_ones_and_augments(tmp_path):
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), np.full((100, 100, 3), 60, np.uint8))
    worker._CACHE = worker._ImageCache()
    windows = [[0, 0, 64, 64], [36, 0, 100, 64], [36, 36, 100, 100]]
    result = run_unit(_task(tmp_path, path, (100, 100), windows))
    # Window 1 holds the plane, window 2 nothing (dropped, train), window 3 the helicopter plus one copy.
    assert [w["name"] for w in result.windows] == ["img__1__0___0", "img__1__36___36", "img__1__36___36__aug1"]
    assert result.processed == 3 and result.problems == []
    assert result.windows[0]["objects"][0]["bbox"] == [4, 4, 16, 8]
    assert result.windows[1]["objects"][0] == {
        "object": 3, "category": "helicopter", "difficult": 1, "truncated": False,
        "bbox": [34, 34, 10, 10], "area": 100, "segmentation": [[34, 34, 44, 34, 44, 44, 34, 44]],
    }
    assert (tmp_path / "out" / "labelTxt" / "train" / "img__1__0___0.txt").read_text() == "4 4 20 4 20 12 4 12 plane 0\n"
    # The record survives a JSON round trip (resume reads it back).
    again = UnitResult.from_dict(result.to_dict())
    assert again.windows == result.windows and again.best_iof == result.best_iof


def test_the_checksum_task_hashes_the_whole_file(tmp_path):
    # The one place a source image's checksum is computed; the file is read in chunks, so make it span several.
    path = tmp_path / "img.png"
    path.write_bytes(bytes(range(256)) * 3000)
    result = worker.run_hash(worker.HashTask("train", "img", path))
    assert (result.split, result.stem) == ("train", "img")
    assert result.input_sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and result.seconds >= 0


def test_cache_keeps_one_source_and_one_resized_copy(tmp_path):
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(first), np.zeros((100, 100, 3), np.uint8))
    cv2.imwrite(str(second), np.zeros((80, 80, 3), np.uint8))
    worker._CACHE = worker._ImageCache()
    run_unit(_task(tmp_path, first, (100, 100), [[0, 0, 64, 64]], factor=0.5, scaled=(50, 50)))
    cache = worker._CACHE
    assert cache.source.shape == (100, 100, 3) and cache.scaled.shape == (50, 50, 3)
    run_unit(_task(tmp_path, second, (80, 80), [[0, 0, 64, 64]]))
    assert cache.path == second and cache.source.shape == (80, 80, 3) and cache.scaled is cache.source


def test_unreadable_source_gives_a_problem_not_an_exception(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    worker._CACHE = worker._ImageCache()
    result = run_unit(_task(tmp_path, path, (100, 100), [[0, 0, 64, 64]]))
    assert result.windows == [] and result.problems[0][0] == "unreadable_image"


def _shared(tmp_path: Path, image: np.ndarray):
    """A PrepareTask for ``image`` (written as PNG) and its shared pixels file, made as the builder makes it."""
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), image)
    size = (image.shape[1], image.shape[0])
    (tmp_path / "pixels").mkdir(exist_ok=True)
    prepare = worker.PrepareTask("train", "img", path, size, size, "area", tmp_path / "pixels" / "img.npy")
    worker.create_shared(prepare)
    return path, size, prepare


def test_units_of_a_shared_image_wait_for_their_rows(tmp_path):
    import threading

    image = np.full((100, 100, 3), 60, np.uint8)
    path, size, prepare = _shared(tmp_path, image)
    windows = [[0, 0, 64, 64], [36, 36, 100, 100]]
    task = _task(tmp_path, path, size, windows)
    task.pixels_path = prepare.pixels_path
    worker._CACHE = worker._ImageCache()
    pixels = np.load(prepare.pixels_path, mmap_mode="r+")
    pixels[:] = image
    rows = worker.SharedRows.open(prepare.pixels_path, write=True)
    rows.publish(64)  # the first window's rows only
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", run_unit(task)))
    thread.start()
    thread.join(0.3)
    assert thread.is_alive()  # the second window needs rows 36..100
    written = sorted(p.name for p in (tmp_path / "out" / "images" / "train").iterdir())
    assert written == ["img__1__0___0.png"]
    rows.publish(100)
    thread.join(10)
    result = box["result"]
    assert not result.aborted and [w["name"] for w in result.windows][:2] == ["img__1__0___0", "img__1__36___36"]
    rows.close()


def test_a_unit_stops_when_the_shared_decode_fails_and_lists_what_it_wrote(tmp_path):
    import threading

    image = np.full((100, 100, 3), 60, np.uint8)
    path, size, prepare = _shared(tmp_path, image)
    task = _task(tmp_path, path, size, [[0, 0, 64, 64], [36, 36, 100, 100]])
    task.pixels_path = prepare.pixels_path
    worker._CACHE = worker._ImageCache()
    rows = worker.SharedRows.open(prepare.pixels_path, write=True)
    rows.publish(64)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", run_unit(task)))
    thread.start()
    thread.join(0.3)
    rows.publish(worker.SharedRows.FAILED)
    thread.join(10)
    result = box["result"]
    assert result.aborted and [w["name"] for w in result.windows] == ["img__1__0___0"]
    rows.close()


def test_prepare_fills_the_shared_pixels_and_ends_the_count_at_the_height(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    path, size, prepare = _shared(tmp_path, image)
    result = worker.run_prepare(prepare)
    assert result.problems == []
    assert np.array_equal(np.load(prepare.pixels_path), image[:, :, ::-1])  # workers keep the file's RGB order
    reader = worker.SharedRows.open(prepare.pixels_path)
    assert reader.wait(70) and reader.ready == 70
    reader.close()
    # A source that cannot be decoded ends the count at FAILED, so waiting units stop.
    path.write_bytes(b"not an image at all")
    worker.create_shared(prepare)
    result = worker.run_prepare(prepare)
    assert result.problems and result.problems[0][0] == "unreadable_image"
    reader = worker.SharedRows.open(prepare.pixels_path)
    assert not reader.wait(1)
    reader.close()
