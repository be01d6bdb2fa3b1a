"""Tests of the dataset statistics (dotamini10/stats.py) on tiny hand-written COCO datasets."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dotamini10.build_record import BuildRecord
from dotamini10.errors import DatasetError
from dotamini10.paper import DOTAMINI10_CLASSES, PAPER_INSTANCES, PAPER_TOTAL_INSTANCES
from dotamini10.stats import (
    FIGURE_PNG,
    HISTOGRAM_EDGES,
    SIZES_CSV,
    STATS_JSON,
    TABLE7_CSV,
    compute_stats,
    histogram_bin,
    size_bucket,
    stats_to_dict,
    write_stats_report,
)

CATEGORIES = [{"id": i + 1, "name": name} for i, name in enumerate(DOTAMINI10_CLASSES)]
CAT = {name: i + 1 for i, name in enumerate(DOTAMINI10_CLASSES)}


def _ann(ann_id: int, image_id: int, category: str, area: float) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": CAT[category], "bbox": [0, 0, 1, 1],
            "area": area, "segmentation": [[0, 0, 1, 0, 1, 1, 0, 1]], "iscrowd": 0, "truncated": 0, "difficult": 0}


# Train: areas on and just beside the bucket limits 8^2 = 64, 16^2 = 256 and 32^2 = 1024.
TRAIN = {
    "images": [
        {"id": 1, "file_name": "a.png", "width": 1024, "height": 1024, "scale": 1.0, "aug_copy": 0},
        {"id": 2, "file_name": "b.png", "width": 1024, "height": 1024, "scale": 0.5, "aug_copy": 1},
        {"id": 3, "file_name": "c.png", "width": 1024, "height": 1024, "scale": 0.5, "aug_copy": 0},
    ],
    "annotations": [
        _ann(1, 1, "plane", 64),  # s = 8: very tiny (boundary goes to the lower bucket), below 16
        _ann(2, 1, "plane", 64.5),  # s = 8.03: tiny
        _ann(3, 1, "small-vehicle", 256),  # s = 16: tiny, but not "below 16"
        _ann(4, 2, "small-vehicle", 255.75),  # s = 15.99: tiny, below 16
        _ann(5, 2, "helicopter", 1024),  # s = 32: small, not "below 32"
        _ann(6, 2, "helicopter", 1024.5),  # s = 32.01: medium
        _ann(7, 1, "ship", 0),  # s = 0: very tiny
        _ann(8, 1, "ship", 4 * 16),  # a 4 x 16 box: s = 8, very tiny
    ],
    "categories": CATEGORIES,
}
VAL = {
    "images": [{"id": 10, "file_name": "v.png", "width": 1024, "height": 1024}, {"id": 11, "file_name": "w.png"}],
    "annotations": [_ann(1, 10, "tennis-court", 2048), _ann(2, 11, "storage-tank", 100)],
    "categories": CATEGORIES,
}


def _write_dataset(root: Path, splits: dict[str, object], build: object | None = None) -> Path:
    (root / "annotations").mkdir(parents=True)
    for split, data in splits.items():
        text = data if isinstance(data, str) else json.dumps(data)
        (root / "annotations" / f"{split}.json").write_text(text, encoding="utf-8")
    if build is not None:
        (root / "build.json").write_text(build if isinstance(build, str) else json.dumps(build), encoding="utf-8")
    return root


@pytest.fixture
def tiny(tmp_path) -> Path:
    return _write_dataset(tmp_path / "ds", {"val": VAL, "train": TRAIN})


def test_size_bucket_boundaries_exact():
    assert size_bucket(0) == "very tiny"
    assert size_bucket(64) == "very tiny"  # s = 8 exactly
    assert size_bucket(64.0001) == "tiny"
    assert size_bucket(256) == "tiny"  # s = 16 exactly
    assert size_bucket(256.0001) == "small"
    assert size_bucket(1024) == "small"  # s = 32 exactly
    assert size_bucket(1024.0001) == "medium"
    assert size_bucket(1e10) == "medium"
    with pytest.raises(ValueError, match="area must be a number"):
        size_bucket(float("nan"))


@settings(max_examples=200, deadline=None)
@given(area=st.floats(0, 1e7, allow_nan=False))
def test_size_bucket_agrees_with_sqrt(area):
    s = math.sqrt(area)
    expected = "very tiny" if s <= 8 else "tiny" if s <= 16 else "small" if s <= 32 else "medium"
    # Away from the limits the squared comparison and the square root must agree.
    if min(abs(s - 8), abs(s - 16), abs(s - 32)) > 1e-9:
        assert size_bucket(area) == expected


def test_histogram_bins_are_half_open():
    assert HISTOGRAM_EDGES[:3] == (0.0, 2.0, 4.0) and HISTOGRAM_EDGES[-2:] == (128.0, math.inf)
    assert histogram_bin(0) == 0
    assert histogram_bin(3.99) == 0
    assert histogram_bin(4) == 1  # s = 2 opens bin [2, 4)
    assert histogram_bin(64) == 4
    assert histogram_bin(128 * 128) == len(HISTOGRAM_EDGES) - 2
    assert histogram_bin(1e9) == len(HISTOGRAM_EDGES) - 2


def test_counts_by_hand(tiny):
    stats = compute_stats(tiny)
    assert list(stats.splits) == ["train", "val"]  # Table 7 order, whatever the file order
    assert stats.classes == DOTAMINI10_CLASSES
    assert stats.record is None  # no build.json: still works
    train = stats.splits["train"]
    assert train.images == 3 and train.empty_images == 1 and train.augmented_images == 1
    assert train.instances == {**{c: 0 for c in DOTAMINI10_CLASSES},
                               "plane": 2, "small-vehicle": 2, "helicopter": 2, "ship": 2}
    assert train.images_per_class["small-vehicle"] == 2 and train.images_per_class["plane"] == 1
    assert train.augmented_instances["small-vehicle"] == 1 and train.augmented_instances["helicopter"] == 2
    assert train.buckets == {"very tiny": 3, "tiny": 3, "small": 1, "medium": 1}
    assert train.below == {16: 5, 32: 6}
    assert train.share_below(16) == 5 / 8 and train.share_below(32) == 6 / 8
    assert train.scales == {0.5: 2, 1.0: 1}
    expected_hist = [0] * (len(HISTOGRAM_EDGES) - 1)
    expected_hist[0], expected_hist[4], expected_hist[7], expected_hist[8], expected_hist[16] = 1, 3, 1, 1, 2
    assert train.histogram == expected_hist
    val = stats.splits["val"]
    assert val.buckets == {"very tiny": 0, "tiny": 1, "small": 0, "medium": 1}
    assert val.below == {16: 1, 32: 1}
    overall = stats.overall
    assert overall.total_instances == 10 and overall.images == 5
    assert overall.share_below(16) == 0.6 and overall.share_below(32) == 0.7


def test_paper_numbers_beside_ours(tiny):
    view = stats_to_dict(compute_stats(tiny))
    plane = view["splits"]["train"]["per_class"]["plane"]
    assert plane == {"instances": 2, "paper_instances": 28_373, "ratio": float(f"{2 / 28_373:.6g}"),
                     "images": 1, "augmented_instances": 0}
    assert view["splits"]["val"]["paper_instances"] == 82_219
    assert view["splits"]["train"]["paper_images"] == 10_653
    assert view["all"]["paper_instances"] == 410_305
    assert view["all"]["below"]["16"] == {"instances": 6, "share": 0.6, "paper_share": 0.173}
    assert view["all"]["below"]["32"]["paper_share"] == 0.385


def test_paper_table7_totals_are_consistent():
    for split in ("train", "val"):
        assert sum(PAPER_INSTANCES[split].values()) == PAPER_TOTAL_INSTANCES[split]
        assert tuple(PAPER_INSTANCES[split]) == DOTAMINI10_CLASSES


def test_report_files(tiny, tmp_path):
    out = tmp_path / "report"
    written = write_stats_report(compute_stats(tiny), out)
    assert [p.name for p in written] == [STATS_JSON, TABLE7_CSV, SIZES_CSV, "size_histogram.csv", FIGURE_PNG]
    rows = list(csv.reader((out / TABLE7_CSV).open(encoding="utf-8")))
    assert rows[0][:5] == ["category", "train_instances", "train_paper", "train_ratio", "train_images"]
    assert rows[1] == ["plane", "2", "28373", repr(float(f"{2 / 28373:.6g}")), "1", "0", "7168", "0.0", "0"]
    assert rows[-2][:5] == ["total", "8", "328086", repr(float(f"{8 / 328086:.6g}")), "3"]
    assert rows[-1][:3] == ["image", "3", "10653"]
    sizes = list(csv.reader((out / SIZES_CSV).open(encoding="utf-8")))
    assert ["train", "very tiny", "s <= 8", "3", "0.375", ""] in sizes
    assert ["train", "tiny", "8 < s <= 16", "3", "0.375", ""] in sizes
    assert ["all", "below 16", "s < 16", "6", "0.6", "0.173"] in sizes
    data = json.loads((out / STATS_JSON).read_text(encoding="utf-8"))
    assert data["size_buckets"] == {"very tiny": "s <= 8", "tiny": "8 < s <= 16", "small": "16 < s <= 32",
                                    "medium": "s > 32"}
    png = (out / FIGURE_PNG).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"tIME" not in png and b"Software" not in png
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))


def test_report_is_deterministic_and_defaults_to_stats_dir(tiny):
    first = {p.name: p.read_bytes() for p in write_stats_report(compute_stats(tiny))}
    assert (tiny / "stats" / STATS_JSON).is_file()
    second = {p.name: p.read_bytes() for p in write_stats_report(compute_stats(tiny))}
    assert first == second


def test_other_coco_datasets_work(tmp_path):
    # Any COCO file the builder could write: other class names, a split called "test", no paper numbers.
    data = {"images": [{"id": 1}], "categories": [{"id": 3, "name": "bridge"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "area": 400}]}
    stats = compute_stats(_write_dataset(tmp_path / "x", {"test": data}))
    assert stats.classes == ("bridge",)
    view = stats_to_dict(stats)["splits"]["test"]
    assert view["per_class"]["bridge"] == {"instances": 1, "paper_instances": None, "ratio": None, "images": 1,
                                           "augmented_instances": 0}
    assert view["size_buckets"]["small"]["instances"] == 1


def test_build_json_is_read(tmp_path):
    root = _write_dataset(tmp_path / "b", {"train": TRAIN}, build={"seed": 3, "options": {"iof_threshold": 0.7}})
    record = compute_stats(root).record
    assert record == BuildRecord(seed=3, options={"iof_threshold": 0.7})
    assert record.option("iof_threshold") == 0.7 and record.option("aug_copies") is None  # not recorded
    with pytest.raises(KeyError, match="'iof' is not a BuildOptions field"):  # a reader's typo fails loudly
        record.option("iof")


@pytest.mark.parametrize(
    ("splits", "build", "message"),
    [
        ({}, None, r"annotations.*: no COCO annotation files"),
        ({"train": '{"images": ['}, None, r"train\.json: COCO annotation file is not valid JSON .*line 1 column"),
        ({"train": "[]"}, None, r"train\.json: expected a JSON object"),
        ({"train": {"images": [], "categories": []}}, None, r"train\.json: 'annotations' is missing"),
        ({"train": {**TRAIN, "annotations": [TRAIN["annotations"][0], {**TRAIN["annotations"][1], "category_id": 99}]}},
         None, r"train\.json: annotations\[1\] \(id 2\): unknown category_id 99"),
        ({"train": {**TRAIN, "annotations": [{k: v for k, v in TRAIN["annotations"][0].items() if k != "area"}]}},
         None, r"train\.json: annotations\[0\] \(id 1\): missing 'area'"),
        ({"train": {**TRAIN, "annotations": [{**TRAIN["annotations"][0], "area": -1}]}},
         None, r"annotations\[0\] \(id 1\): 'area' must be a finite number >= 0, got -1"),
        ({"train": {**TRAIN, "annotations": [{**TRAIN["annotations"][0], "image_id": 42}]}},
         None, r"annotations\[0\] \(id 1\): unknown image_id 42"),
        ({"train": {**TRAIN, "images": TRAIN["images"] + TRAIN["images"][:1]}},
         None, r"train\.json: images\[3\] \(id 1\): image id 1 is listed twice"),
        ({"train": TRAIN, "val": {**VAL, "categories": [{"id": 1, "name": "ship"}, *CATEGORIES[1:]]}},
         None, r"val\.json: category id 1 is 'ship' here but 'plane' in another split"),
        ({"train": TRAIN}, "{oops", r"build\.json: build record is not valid JSON"),
        ({"train": TRAIN}, {"seed": "5"}, r"build\.json: 'seed' should be a JSON integer, got '5'"),
        ({"train": TRAIN}, {"dataset": "coco"}, r"build\.json: 'dataset' is 'coco', expected 'dotamini10' or 'aitod'"),
    ],
)
def test_bad_input_names_file_and_entry(tmp_path, splits, build, message):
    root = _write_dataset(tmp_path / "bad", splits, build=build)
    with pytest.raises(DatasetError, match=message):
        compute_stats(root)


def test_missing_annotations_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"annotations: annotations folder not found"):
        compute_stats(tmp_path)
