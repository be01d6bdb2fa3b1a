"""`hsfpn-repro train` on a small COCO-format set written here: classes from the json, errors, a real run.

The set has three classes with non-consecutive category ids (so "in id order" is checked), in a layout of
its own (``ann/``, ``pics/``) given with the path options.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import cli
from pipelines.datasets import DataRootError, coco_categories, coco_layout

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent
CATEGORIES = [{"id": 7, "name": "kayak"}, {"id": 3, "name": "tent"}, {"id": 11, "name": "cow"}]
BY_ID = ["tent", "kayak", "cow"]  # the classes in category-id order


def write_coco(root: Path, split: str, count: int, categories=CATEGORIES, seed: int = 0) -> None:
    """``count`` 64 x 64 images with 2-3 bright squares each, and their COCO json."""
    import cv2

    rng = np.random.default_rng(seed)
    (root / "pics" / split).mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(count):
        img = rng.integers(0, 40, (64, 64, 3), dtype=np.uint8)
        for k in range(2 + i % 2):
            x, y, side = 4 + 20 * k, 8 + 16 * (i % 3), 10 + 2 * k
            img[y:y + side, x:x + side] = 230
            cat = categories[(i + k) % len(categories)]["id"]
            anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=cat, bbox=[x, y, side, side],
                             area=side * side, iscrowd=0))
        cv2.imwrite(str(root / "pics" / split / f"{i:03d}.png"), img)
        images.append(dict(id=i + 1, file_name=f"{i:03d}.png", width=64, height=64))
    (root / "ann").mkdir(exist_ok=True)
    (root / "ann" / f"{split}.json").write_text(json.dumps(dict(images=images, annotations=anns, categories=categories)))


PATHS = ["--train-ann", "ann/train.json", "--val-ann", "ann/val.json", "--train-images", "pics/train",
         "--val-images", "pics/val"]


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "mine"
    write_coco(root, "train", 4)
    write_coco(root, "val", 2, seed=1)
    return root


def test_classes_come_from_the_json_in_id_order(dataset):
    layout = coco_layout(dataset, train_ann="ann/train.json", val_ann="ann/val.json", train_images="pics/train",
                         val_images="pics/val")
    assert layout.classes == tuple(BY_ID)
    assert (layout.train_img, layout.test_img, layout.test_ann) == ("pics/train/", "pics/val/", "ann/val.json")
    assert coco_categories(dataset / "ann" / "val.json") == tuple(BY_ID)


def test_train_and_val_classes_must_agree(dataset, tmp_path):
    other = [{"id": 3, "name": "tent"}, {"id": 7, "name": "canoe"}, {"id": 11, "name": "cow"}]
    write_coco(dataset, "val", 2, categories=other)
    result = runner.invoke(cli.repro_app, ["train", "--config", "faster_rcnn", "--data-root", str(dataset),
                                           "--work-dir", str(tmp_path / "w"), *PATHS, "--dry-run"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: the training and evaluation jsons name different classes: ann/train.json only has ['kayak'], "
        "ann/val.json only has ['canoe']"
    ]


def test_default_layout_and_missing_files(tmp_path):
    root = tmp_path / "coco"
    write_coco(root, "train", 1)
    with pytest.raises(DataRootError, match=r"expected annotations/train.json under data root"):
        coco_layout(root)
    (root / "annotations").mkdir()
    (root / "ann" / "train.json").rename(root / "annotations" / "train.json")
    (root / "annotations" / "val.json").write_text(json.dumps(dict(images=[], annotations=[], categories=[])))
    (root / "pics").rename(root / "images")
    (root / "images" / "val").mkdir()
    (root / "images" / "val" / "a.png").write_bytes(b"")
    with pytest.raises(DataRootError, match=r"val.json: 'categories' is empty"):
        coco_layout(root)
    dup = [{"id": 1, "name": "a"}, {"id": 2, "name": "a"}]
    (root / "annotations" / "val.json").write_text(json.dumps(dict(categories=dup)))
    with pytest.raises(DataRootError, match=r"category names \['a'\] appear more than once"):
        coco_layout(root)


def test_dry_run_of_a_row_resolves_the_neck_classes_and_devices(dataset, tmp_path):
    work = tmp_path / "w"
    result = runner.invoke(cli.repro_app, ["train", "--config", "retinanet", "--data-root", str(dataset),
                                           "--work-dir", str(work), *PATHS, "--gpus", "0", "--nproc", "2",
                                           "--launcher", "pytorch", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "train retinanet__hsfpn (retinanet)" in result.output and "3 classes ['tent', 'kayak', 'cow']" in result.output
    assert "2 CPU processes (gloo) x 1 image(s) = effective batch 2" in result.output
    assert "validation every 1 epoch(s), best kept" in result.output
    assert "type='HSFPN'" in result.output and "num_classes=3" in result.output
    assert "save_best='aitod/AP'" in result.output
    assert not work.exists()  # a dry run writes nothing


def test_seeds_are_jobs_in_subfolders_of_the_work_dir(dataset, tmp_path):
    work = tmp_path / "w"
    base = ["train", "--config", "retinanet", "--data-root", str(dataset), "--work-dir", str(work), *PATHS, "--dry-run"]
    result = runner.invoke(cli.repro_app, [*base, "--seeds", "2"])
    assert result.exit_code == 0, result.output
    assert f"seed 0 work dir: {work / 's0'} (pending)" in result.output
    assert f"seed 1 work dir: {work / 's1'} (pending)" in result.output
    assert "# ---- resolved config of seed 1" in result.output and "randomness = dict(seed=1)" in result.output
    single = runner.invoke(cli.repro_app, base)
    assert f"work dir: {work} (pending)" in single.output and "seed 0" not in single.output
    both = runner.invoke(cli.repro_app, [*base, "--seeds", "2", "--seed-list", "3"])
    assert both.exit_code == 1 and "give --seeds N or --seed-list, not both" in both.output
    assert not work.exists()


def test_summary_of_several_seeds(dataset, tmp_path):
    from pipelines.job_folder import JobStatus
    from pipelines.presets import resolve_settings
    from pipelines.runner import JobResult
    from pipelines.training import plan_training, render_summary, summarize, TrainOutcome

    layout = coco_layout(dataset, train_ann="ann/train.json", val_ann="ann/val.json", train_images="pics/train",
                         val_images="pics/val")
    plan = plan_training("retinanet", resolve_settings("smoke", tmp_path / "w", seeds=(0, 1, 2)), layout)
    figures = [dict(AP=10.0, AP50=20.0), dict(AP=12.0, AP50=24.0), {}]
    statuses = [JobStatus.DONE, JobStatus.SKIPPED, JobStatus.FAILED]
    results = [JobResult(job, status, metrics=m) for job, status, m in zip(plan.jobs, statuses, figures)]
    md = render_summary(plan, results)
    assert md.startswith("# Training retinanet__hsfpn, 3 seeds on mine")
    assert "- seeds: 0, 1, 2; 2 finished, missing 2" in md
    assert "| mean ± std (n=2) |  | 11.0 ± 1.4 | 22.0 ± 2.8 |" in md  # sample std of (10, 12): sqrt(2)
    assert f"| seed 2 | failed | - | - |" in md and f"`{tmp_path / 'w' / 's2'}`" in md
    text = summarize(TrainOutcome(plan, results))
    assert "over 2 of 3 seeds: AP 11.0 ± 1.4  AP50 22.0 ± 2.8" in text
    assert f"curves: tensorboard --logdir {tmp_path / 'w'}" in text


def test_bad_config_and_neck_are_one_line_errors(dataset, tmp_path):
    base = ["train", "--data-root", str(dataset), "--work-dir", str(tmp_path / "w"), *PATHS, "--dry-run"]
    result = runner.invoke(cli.repro_app, [*base, "--config", "yolo"])
    assert result.exit_code == 1 and result.output.startswith("error: --config yolo: neither a row id (atss, ")
    result = runner.invoke(cli.repro_app, [*base, "--config", "faster_rcnn", "--neck", "bifpn"])
    assert result.exit_code == 1 and "--neck must be one of fpn, hsfpn, got 'bifpn'" in result.output
    broken = tmp_path / "broken.py"
    broken.write_text("model = dict(type='FasterRCNN')\n")
    result = runner.invoke(cli.repro_app, [*base, "--config", str(broken)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "not an MMDetection 3 detector config the presets can drive" in result.output


def _own_config(tmp_path: Path) -> Path:
    # A user's file on top of a toolkit config: fewer RoIs per image (seconds on a CPU) and every box kept.
    path = tmp_path / "my_faster_rcnn.py"
    base = REPO / "pipelines" / "configs" / "faster-rcnn_mobilenetv2_fpn_1x_aitod.py"
    path.write_text(
        f"_base_ = {str(base)!r}\n"
        "model = dict(train_cfg=dict(rcnn=dict(sampler=dict(num=64))), test_cfg=dict(rcnn=dict(score_thr=0.0)),\n"
        "             roi_head=dict(bbox_head=dict(fc_out_channels=64)))\n"
    )
    return path


@pytest.mark.slow
def test_train_on_own_data_writes_the_model_detect_takes(dataset, tmp_path):
    work = tmp_path / "run"
    args = ["train", "--config", str(_own_config(tmp_path)), "--neck", "hsfpn", "--data-root", str(dataset), *PATHS,
            "--work-dir", str(work), "--preset", "smoke", "--img-scale", "64", "--epochs", "1", "--milestones", "1",
            "--batch-per-gpu", "1", "--report-every", "1"]
    result = runner.invoke(cli.repro_app, args)
    assert result.exit_code == 0, result.output + (work / "job.log").read_text()[-3000:]
    assert "my_faster_rcnn__hsfpn: done" in result.output and "detect with: hsfpn-repro detect --config" in result.output
    done = json.loads((work / "done.json").read_text())
    assert set(done["metrics"]) == {"AP", "AP50", "AP75", "APvt", "APt", "APs", "APm"}
    assert (work / "best_aitod_AP_epoch_1.pth").is_file()  # validated during training, best kept
    record = json.loads((work / "train.json").read_text())
    assert record["data"]["classes"] == BY_ID and record["settings"]["val_interval"] == 1

    from mmdet.apis import init_detector

    model = init_detector(str(work / "job_config.py"), str(work / "model.pth"), device="cpu")
    assert list(model.dataset_meta["classes"]) == BY_ID
    assert model.roi_head.bbox_head.num_classes == 3 and type(model.neck).__name__ == "HSFPN"
    md = (work / "train.md").read_text()
    assert md.startswith("# Training my_faster_rcnn__hsfpn on mine") and "| AP | AP50 |" in md
    assert (work / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"curves: tensorboard --logdir {work}" in result.output

    # TensorBoard: every loss term, lr and iteration time, and the validation figures, read back from the events.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (vis_data,) = work.glob("*/vis_data")  # one attempt: one log folder (its event files)
    reader = EventAccumulator(str(vis_data))
    reader.Reload()
    tags = set(reader.Tags()["scalars"])
    assert {"loss", "loss_rpn_cls", "loss_cls", "loss_bbox", "lr", "time", "data_time"} <= tags, tags
    assert {"aitod/AP", "aitod/AP50", "aitod/APvt"} <= tags, tags
    (ap,) = reader.Scalars("aitod/AP")
    assert ap.step == 1 and abs(ap.value - done["raw_metrics"]["aitod/AP"]) < 1e-6
    assert all(math.isfinite(e.value) for e in reader.Scalars("loss"))

    # Finished: a second run skips the job and reports it again.
    again = runner.invoke(cli.repro_app, args)
    assert again.exit_code == 0 and "my_faster_rcnn__hsfpn: skipped (done before)" in again.output
