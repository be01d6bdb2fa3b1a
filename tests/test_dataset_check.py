"""The dataset check before a job (pipelines.dataset_check): missing and truncated images, sizes, annotations
named by id, the cache, --skip-bad's copies, the label order; and `train` stopping on them before anything runs.

The set is test_train's: 64 x 64 images, image k (k = 0, 1, ...) holding 2 + k % 2 boxes, annotation ids counted
from 1 in image order (image 0: ids 1, 2; image 1: 3, 4, 5; image 2: 6, 7; image 3: 8, 9, 10).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from pipelines.dataset_check import DatasetCheckError, check_dataset, clean_coco, scan_split
from pipelines.datasets import DataRootError, coco_layout
from test_train import PATHS, dataset  # noqa: F401  (the fixture: test_train's set)

runner = CliRunner()


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HSFPN_CACHE", str(tmp_path / "cache"))


def layout(root: Path):
    return coco_layout(root, train_ann="ann/train.json", val_ann="ann/val.json", train_images="pics/train",
                       val_images="pics/val")


def break_two_images(root: Path) -> None:
    """Image 2 missing, image 1 cut after 200 bytes (its PNG chunks then end past the file)."""
    (root / "pics" / "train" / "002.png").unlink()
    png = root / "pics" / "train" / "001.png"
    png.write_bytes(png.read_bytes()[:200])


def edit_json(root: Path, split: str, change) -> None:
    path = root / "ann" / f"{split}.json"
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))


def test_a_clean_set_passes_with_one_line_per_json(dataset):
    check = check_dataset(layout(dataset))
    assert check.problems == [] and check.layout == layout(dataset)
    assert check.notes() == ["data check ann/train.json: 4 images (none cached), 10 annotations: no problem",
                             "data check ann/val.json: 2 images (none cached), 5 annotations: no problem"]


def test_one_missing_and_one_truncated_image_are_named_with_their_annotation_ids(dataset):
    break_two_images(dataset)
    with pytest.raises(DatasetCheckError) as caught:
        check_dataset(layout(dataset))
    lines = str(caught.value).splitlines()
    assert lines[0] == (f"2 problem(s) in the dataset at {dataset} (--skip-bad drops them and records them):")
    assert lines[1].startswith("  pics/train/001.png: truncated: PNG chunk ")
    assert lines[1].endswith("file has 200 (annotation ids 3, 4, 5)")
    assert lines[2] == "  pics/train/002.png: missing (annotation ids 6, 7)"


def test_a_header_of_another_size_than_the_json_says(dataset):
    edit_json(dataset, "train", lambda coco: coco["images"][0].update(width=80))
    scan = scan_split(dataset, "ann/train.json", "pics/train")
    assert [p.message() for p in scan.problems] == ["pics/train/000.png: 64 x 64 px, the json says 80 x 64 "
                                                    "(annotation ids 1, 2)"]


def test_annotation_problems_name_the_json_and_the_annotation_id(dataset):
    def spoil(coco):
        anns = coco["annotations"]
        anns[0]["category_id"] = 99  # id 1
        anns[2]["bbox"] = [10, 10, 0.5, 4]  # id 3: under 1 px wide
        anns[3]["bbox"] = [60, 10, 10, 10]  # id 4: to x 70 in a 64 px image
        anns[4]["image_id"] = 42  # id 5
        anns[5]["bbox"] = [1, 2, "3", 4]  # id 6
        anns.append(dict(anns[6]))  # id 7 again
        anns.append(dict(anns[6], id=11, image_id=[1]))  # ids that no lookup can take: problems, not crashes
        anns.append(dict(anns[6], id=12, category_id={"id": 1}))
        anns.append(dict(anns[6], id=[13]))
        coco["images"].append(dict(coco["images"][0], id={"a": 1}))

    edit_json(dataset, "train", spoil)
    scan = scan_split(dataset, "ann/train.json", "pics/train")
    assert [p.message() for p in scan.problems] == [
        "ann/train.json: image entry 4: expected an integer or text id, file_name and positive integer width and "
        "height (no annotations)",
        "ann/train.json: annotation id 1 (image 000.png): category_id 99 is not a listed category",
        "ann/train.json: annotation id 3 (image 001.png): bbox [10, 10, 0.5, 4] is under 1 px wide or high",
        "ann/train.json: annotation id 4 (image 001.png): bbox [60, 10, 10, 10] reaches outside the 64 x 64 image",
        "ann/train.json: annotation id 5: image_id 42 is not a listed image",
        "ann/train.json: annotation id 6 (image 002.png): bbox [1, 2, '3', 4] is not [x, y, w, h] with finite "
        "w, h >= 0",
        "ann/train.json: annotation id 7 (image 002.png): the id is used by an earlier annotation",
        "ann/train.json: annotation id 11: image_id [1] is not a listed image",
        "ann/train.json: annotation id 12 (image 002.png): category_id {'id': 1} is not a listed category",
        "ann/train.json: annotation 13: not an object with an integer or text id",
    ]
    # A box 1 px past the edge is an edge convention, not a problem.
    edit_json(dataset, "val", lambda coco: coco["annotations"][0].update(bbox=[0, 0, 65, 10]))
    assert scan_split(dataset, "ann/val.json", "pics/val").problems == []


def test_evaluation_boxes_past_the_edge_are_kept_and_said(dataset):
    edit_json(dataset, "val", lambda coco: coco["annotations"][0].update(bbox=[60, 0, 10, 10]))
    check = check_dataset(layout(dataset))
    assert check.problems == [] and len(check.kept) == 1
    assert check.notes()[-1] == ("ann/val.json: 1 box(es) under 1 px or past their image's edge kept for the "
                                 "evaluation, which scores any box (annotation id 1 (image 000.png): bbox [60, 0, 10, "
                                 "10] reaches outside the 64 x 64 image)")


def test_areas_far_from_the_box_are_one_note(dataset):
    edit_json(dataset, "val", lambda coco: [a.update(area=64 * 64) for a in coco["annotations"]])
    notes = check_dataset(layout(dataset)).notes()
    # Annotation 1 of the val set is a 10 x 10 box (write_coco: side 10 + 2k).
    assert notes[-1] == ("ann/val.json: 5 of 5 annotations have an area more than 2x away from their box's w x h "
                         "(e.g. annotation id 1: area 4,096 for a 10 x 10 box); the AI-TOD size ranges go by area: "
                         "--area-from-box uses w x h")
    assert not any("area" in line for line in check_dataset(layout(dataset)).notes(area_from_box=True))


def test_reruns_probe_only_the_images_that_changed(dataset):
    first = scan_split(dataset, "ann/train.json", "pics/train")
    again = scan_split(dataset, "ann/train.json", "pics/train")
    assert (first.probed, again.probed) == (4, 0) and again.problems == first.problems == []
    png = dataset / "pics" / "train" / "003.png"
    png.write_bytes(png.read_bytes()[:100])
    os.utime(png, ns=(1, 1))
    changed = scan_split(dataset, "ann/train.json", "pics/train")
    assert changed.probed == 1 and [p.reason for p in changed.problems] == ["truncated"]
    # The cache is keyed by the json's digest: another json is parsed and every image probed again.
    edit_json(dataset, "train", lambda coco: coco["annotations"].pop())
    assert scan_split(dataset, "ann/train.json", "pics/train").probed == 4


def test_a_damaged_or_unwritable_cache_costs_a_rescan_only(dataset, tmp_path, monkeypatch):
    first = scan_split(dataset, "ann/train.json", "pics/train")
    (cached,) = (tmp_path / "cache" / "dataset-scan").glob("*.json")
    record = json.loads(cached.read_text())
    del record["index"]["images"]  # valid json of the right version, cut by hand
    cached.write_text(json.dumps(record))
    again = scan_split(dataset, "ann/train.json", "pics/train")
    assert again.probed == 4 and again.images == first.images == 4 and again.problems == []  # scanned anew
    assert "images" in json.loads(cached.read_text())["index"]  # and the index is whole again
    # A cache that cannot be written (its folder is a file: refused even to root): the scan still answers,
    # probing every time.
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("HSFPN_CACHE", str(tmp_path / "a_file" / "cache"))
    assert [scan_split(dataset, "ann/train.json", "pics/train").probed for _ in range(2)] == [4, 4]


def test_skip_bad_drops_the_bad_objects_into_copies_and_records_them(dataset, tmp_path):
    break_two_images(dataset)
    edit_json(dataset, "train", lambda coco: coco["annotations"][0].update(category_id=99))
    check = check_dataset(layout(dataset), skip_bad=True, out=tmp_path / "checked")
    copy = json.loads(Path(check.layout.train_ann).read_text())
    assert [i["file_name"] for i in copy["images"]] == ["000.png", "003.png"]
    assert [a["id"] for a in copy["annotations"]] == [2, 8, 9, 10]  # 1 bad, 3-7 on the dropped images
    assert check.layout.test_ann == "ann/val.json"  # the evaluation json had no problem: read as it is
    skipped = json.loads((tmp_path / "checked" / "skipped.json").read_text())
    assert [(p["file"], p["reason"], p["ann_ids"]) for p in skipped["ann/train.json"]] == [
        ("pics/train/001.png", "truncated", [3, 4, 5]), ("pics/train/002.png", "missing", [6, 7]),
        ("ann/train.json", "unknown_category", [1])]
    assert check.notes()[-1] == f"--skip-bad: 3 problem(s) dropped, recorded in {tmp_path / 'checked' / 'skipped.json'}"
    # A dry run (no folder) writes nothing and keeps the layout.
    dry = check_dataset(layout(dataset), skip_bad=True)
    assert dry.layout == layout(dataset)
    assert dry.notes()[-1] == "--skip-bad: 3 problem(s) to drop (a real run records them)"


def test_clean_coco_keeps_the_first_of_a_duplicated_image_id():
    coco = dict(images=[dict(id=1, file_name="a.png"), dict(id=1, file_name="b.png")],
                annotations=[dict(id=5, image_id=1)], categories=[])
    from pipelines.dataset_check import DataProblem

    dup = DataProblem("x.json", "duplicate_image_id", "image entry 1: id 1 is listed before", 1, (), (1,))
    assert clean_coco(coco, [dup]) == dict(images=[dict(id=1, file_name="a.png")],
                                           annotations=[dict(id=5, image_id=1)], categories=[])


def test_classes_in_another_order_than_the_json_lists_them_are_refused(dataset):
    import dataclasses

    swapped = dataclasses.replace(layout(dataset), classes=("tent", "kayak", "cow"))
    with pytest.raises(DataRootError, match=r"ann/train.json: the json lists the categories as \['kayak', 'tent', "
                                            r"'cow'\], the job names them \['tent', 'kayak', 'cow'\]"):
        check_dataset(swapped)


def test_train_rejects_a_missing_and_a_truncated_image_before_anything_runs(dataset, tmp_path):
    break_two_images(dataset)
    work = tmp_path / "run"
    result = runner.invoke(cli.repro_app, ["train", "--config", "faster_rcnn", "--data-root", str(dataset), *PATHS,
                                           "--work-dir", str(work), "--gpus", "0"])
    assert result.exit_code == 1
    assert "pics/train/001.png: truncated" in result.output
    assert "pics/train/002.png: missing (annotation ids 6, 7)" in result.output
    assert "Traceback" not in result.output and not work.exists()
    # --dry-run says the same.
    dry = runner.invoke(cli.repro_app, ["train", "--config", "faster_rcnn", "--data-root", str(dataset), *PATHS,
                                        "--work-dir", str(work), "--dry-run"])
    assert dry.exit_code == 1 and "pics/train/002.png: missing (annotation ids 6, 7)" in dry.output


def test_train_dry_run_with_skip_bad_says_what_it_would_drop(dataset, tmp_path):
    break_two_images(dataset)
    work = tmp_path / "run"
    result = runner.invoke(cli.repro_app, ["train", "--config", "faster_rcnn", "--data-root", str(dataset), *PATHS,
                                           "--work-dir", str(work), "--gpus", "0", "--skip-bad", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "data check ann/train.json: 4 images (none cached), 10 annotations: 1 missing, 1 truncated" in result.output
    assert "--skip-bad: 2 problem(s) to drop (a real run records them)" in result.output
    assert not work.exists()
