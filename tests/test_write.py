"""Tests of dotamini10.io (atomic writes, deterministic JSON) and dotamini10.write (DOTA text, COCO, checksums)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dotamini10.io import (
    atomic_path,
    atomic_write_bytes,
    json_text,
    jsonl_text,
    read_json,
    read_json_if_valid,
    remove_temporaries,
    write_json,
)
from dotamini10.write import coco_document, dota_lines, format_number, sha256_bytes, sha256_file


def test_atomic_write_leaves_only_the_target(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_atomic_path_keeps_the_old_content_when_the_writer_fails(tmp_path):
    target = tmp_path / "report.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer died"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half of the new")
            raise RuntimeError("writer died")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    with atomic_path(target) as tmp:  # a writer that takes a path, as torch.save or savefig do
        assert tmp.parent == tmp_path and tmp.name.startswith(".report.json.")
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"


def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch):
    import builtins
    import errno

    real_open = builtins.open

    class FullDisk:  # what a file object does on a full disk: the write fails, naming no file
        def __init__(self, *args, **kwargs):
            self.file = real_open(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(builtins, "open", lambda path, mode="r", *a, **k: FullDisk(path, mode, *a, **k)
                        if "w" in mode else real_open(path, mode, *a, **k))
    target = tmp_path / "images" / "P0001__1024__0___0.png"
    with pytest.raises(OSError) as caught:
        atomic_write_bytes(target, b"pixels", make_parents=True)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert str(caught.value) == f"[Errno 28] No space left on device: '{target}'"
    assert list(target.parent.iterdir()) == []  # no temporary file left behind


def test_remove_temporaries_deletes_leftovers_of_killed_writers(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".x.png.123.tmp").write_bytes(b"half")
    (tmp_path / "sub" / "x.png").write_bytes(b"whole")
    assert remove_temporaries(tmp_path) == 1
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.png"]


def test_numbers_and_dota_lines():
    assert [format_number(v) for v in (12.0, 12.5, 12.345, -0.001, 1e-9, 3.999)] == ["12", "12.5", "12.35", "0", "0", "4"]
    quads = [np.array([[1, 2], [3.5, 2], [3.5, 4.25], [1, 4.25]])]
    assert dota_lines(quads, ["plane"], [1]) == "1 2 3.5 2 3.5 4.25 1 4.25 plane 1\n"
    assert dota_lines([], [], []) == ""


def test_json_is_deterministic_and_round_trips(tmp_path):
    doc = {"b": [1, 2.5], "a": "é"}
    assert json_text(doc) == '{"b":[1,2.5],"a":"é"}\n'
    assert jsonl_text([{"x": 1}, {"x": 2}]) == '{"x":1}\n{"x":2}\n'
    write_json(tmp_path / "d.json", doc, indent=1)
    assert json.loads((tmp_path / "d.json").read_text(encoding="utf-8")) == doc


def test_checksums_and_coco_categories(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_bytes(b"abc") == sha256_file(tmp_path / "f") == expected
    doc = coco_document(("plane", "ship"), [], [])
    assert doc["categories"] == [
        {"id": 1, "name": "plane", "supercategory": "dota"},
        {"id": 2, "name": "ship", "supercategory": "dota"},
    ]


def test_pieces_are_written_and_hashed_as_the_joined_file(tmp_path):
    pieces = [b"\x89PNG", memoryview(b"--middle--")[2:8], b"end"]
    atomic_write_bytes(tmp_path / "p.bin", pieces)
    assert (tmp_path / "p.bin").read_bytes() == b"\x89PNGmiddleend"
    assert sha256_bytes(pieces) == sha256_bytes(b"\x89PNGmiddleend")
    assert [p.name for p in tmp_path.iterdir()] == ["p.bin"]


def test_write_json_makes_the_folder_and_leaves_no_temporary_files(tmp_path):
    write_json(tmp_path / "a" / "done.json", {"b": 1, "a": 2}, indent=2, sort_keys=True)
    assert (tmp_path / "a" / "done.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["done.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"x\.json: detections file not found"),
        ("", r"x\.json: detections file is empty"),
        ('{"a": 1,\n', r"x\.json: detections is not valid JSON \(line 2 column 1: Expecting property name"),
        (b"\xff{}", r"x\.json: detections is not UTF-8 text \(invalid start byte at byte 0\)"),
    ],
)
def test_read_json_names_the_file_and_the_fault_in_one_line(tmp_path, content, message):
    path = tmp_path / "x.json"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(LookupError, match=message) as caught:
        read_json(path, what="detections", error=LookupError)
    assert "\n" not in str(caught.value)
    assert read_json_if_valid(path) is None


def test_read_json_reads_and_a_folder_is_refused(tmp_path):
    (tmp_path / "ok.json").write_text('{"a": [1, 2]}')
    assert read_json(tmp_path / "ok.json") == {"a": [1, 2]} == read_json_if_valid(tmp_path / "ok.json")
    with pytest.raises(ValueError, match="build record path is a directory"):
        read_json(tmp_path, what="build record")
