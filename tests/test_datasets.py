"""Dataset layouts: AI-TOD as released, DOTAmini10 as built, clear errors, and their use in a config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.datasets import (
    AITOD_CLASSES,
    DataRootError,
    aitod_layout,
    apply_dataset,
    coco_split_layout,
    dotamini10_layout,
    quick_categories,
)


def _aitod(root: Path, images: str = "{split}/images") -> Path:
    (root / "annotations").mkdir(parents=True)
    for split in ("trainval", "test"):
        (root / "annotations" / f"aitod_{split}_v1.json").write_text("{}")
        folder = root / images.format(split=split)
        folder.mkdir(parents=True)
        (folder / "0001.png").write_bytes(b"png")
    return root


@pytest.mark.parametrize("images", ["{split}/images", "{split}", "images/{split}"])
def test_aitod_image_folders_are_found_in_each_known_layout(tmp_path, images):
    layout = aitod_layout(_aitod(tmp_path / "AI-TOD", images))
    assert layout.train_img == images.format(split="trainval") + "/"
    assert layout.test_img == images.format(split="test") + "/"
    assert layout.train_ann == "annotations/aitod_trainval_v1.json" and layout.classes == AITOD_CLASSES


def test_aitod_missing_annotation_names_what_was_expected_and_found(tmp_path):
    root = _aitod(tmp_path / "AI-TOD")
    (root / "annotations" / "aitod_test_v1.json").rename(root / "annotations" / "test.json")
    with pytest.raises(DataRootError) as err:
        aitod_layout(root)
    message = str(err.value)
    assert "expected annotations/aitod_test_v1.json" in message and "test.json" in message


def test_aitod_missing_images_lists_the_root(tmp_path):
    root = tmp_path / "AI-TOD"
    (root / "annotations").mkdir(parents=True)
    for split in ("trainval", "test"):
        (root / "annotations" / f"aitod_{split}_v1.json").write_text("{}")
    (root / "pics").mkdir()
    with pytest.raises(DataRootError, match=r"expected image files in trainval/images/ or trainval/ or images/trainval/ .*found annotations/, pics/"):
        aitod_layout(root)


def test_aitod_explicit_paths_and_missing_root(tmp_path):
    root = _aitod(tmp_path / "AI-TOD", "imgs/{split}")
    layout = aitod_layout(root, train_images="imgs/trainval", test_images="imgs/test")
    assert (layout.train_img, layout.test_img) == ("imgs/trainval/", "imgs/test/")
    with pytest.raises(DataRootError, match="does not exist"):
        aitod_layout(root, train_images="imgs/trainval", test_images="nowhere")
    with pytest.raises(DataRootError, match="AI-TOD data root .* does not exist"):
        aitod_layout(tmp_path / "missing")


def _dotamini10(root: Path) -> Path:
    (root / "annotations").mkdir(parents=True)
    cats = [{"id": 2, "name": "ship"}, {"id": 1, "name": "plane"}]
    for split in ("train", "val"):
        (root / "annotations" / f"{split}.json").write_text(json.dumps({"categories": cats}))
        (root / "images" / split).mkdir(parents=True)
    return root


def test_dotamini10_layout_reads_classes_in_id_order(tmp_path):
    layout = dotamini10_layout(_dotamini10(tmp_path / "D"))
    assert layout.classes == ("plane", "ship")
    assert (layout.train_img, layout.test_img, layout.test_ann) == ("images/train/", "images/val/", "annotations/val.json")


def test_dotamini10_errors(tmp_path):
    root = _dotamini10(tmp_path / "D")
    (root / "images" / "val").rmdir()
    with pytest.raises(DataRootError, match=r"expected an images/val/ folder .* holds train/"):
        dotamini10_layout(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataRootError, match=r"DOTAmini10: expected annotations/train.json .* holds nothing"):
        coco_split_layout(tmp_path / "empty", "dotamini10", (), train_split="train", test_split="val")


def test_apply_dataset_sets_paths_classes_and_head_sizes(tmp_path):
    from mmengine.config import Config

    from pipelines.detectors import CONFIG_DIR

    cfg = Config.fromfile(str(CONFIG_DIR / "cascade-rcnn_r50_fpn_1x_aitod.py"))
    layout = dotamini10_layout(_dotamini10(tmp_path / "D"))
    apply_dataset(cfg, layout)
    train = cfg.train_dataloader.dataset
    assert train.data_root == str(layout.root) + "/" and train.data_prefix == {"img": "images/train/"}
    assert cfg.test_dataloader.dataset.ann_file == "annotations/val.json"
    assert cfg.test_evaluator.ann_file == str(layout.root / "annotations" / "val.json")
    assert cfg.train_dataloader.dataset.metainfo["classes"] == ("plane", "ship")
    assert [h.num_classes for h in cfg.model.roi_head.bbox_head] == [2, 2, 2]
    assert cfg.model.rpn_head.get("num_classes", 1) == 1  # the RPN stays class-agnostic


def test_quick_categories_reads_either_end_of_a_large_json(tmp_path):
    cats = [{"id": 2, "name": "ship"}, {"id": 1, "name": "airplane"}]
    head = tmp_path / "head.json"
    head.write_text(json.dumps({"categories": cats, "annotations": [{"id": i, "bbox": [1, 2, 3, 4]} for i in range(20000)]}))
    tail = tmp_path / "tail.json"
    tail.write_text(json.dumps({"annotations": [{"id": i} for i in range(20000)], "categories": cats}))
    middle = tmp_path / "middle.json"
    filler = [{"id": i} for i in range(20000)]
    middle.write_text(json.dumps({"a": filler, "categories": cats, "b": filler}))
    assert head.stat().st_size > 2 * 4096
    # In the json's order (MMDetection's label order), not by id.
    assert quick_categories(head, window=4096) == ["ship", "airplane"]
    assert quick_categories(tail, window=4096) == ["ship", "airplane"]
    assert quick_categories(middle, window=4096) is None  # not found: no verdict


def test_aitod_with_other_classes_is_rejected(tmp_path):
    root = _aitod(tmp_path / "AI-TOD")
    (root / "annotations" / "aitod_test_v1.json").write_text(json.dumps({"categories": [{"id": 1, "name": "car"}]}))
    with pytest.raises(DataRootError, match=r"aitod_test_v1.json: categories \['car'\] are not the expected classes"):
        aitod_layout(root)
    good = [{"id": i + 1, "name": n} for i, n in enumerate(AITOD_CLASSES)]
    (root / "annotations" / "aitod_test_v1.json").write_text(json.dumps({"categories": good}))
    assert aitod_layout(root).test_ann == "annotations/aitod_test_v1.json"
