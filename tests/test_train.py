"""`hsfpn-repro train` on a small COCO-format set written here: classes from the json, errors, a real run.

The set has three classes with non-consecutive category ids listed out of id order (so the label order, the
json's, is checked), in a layout of its own (``ann/``, ``pics/``) given with the path options.
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
# The classes in the json's order: MMDetection's CocoDataset numbers labels so (label 0 is category 7), whatever
# the ids; classes in id order (tent first) would name label 0 "tent" while it learns kayaks.
LABELS = ["kayak", "tent", "cow"]


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


def test_classes_come_from_the_json_in_mmdets_label_order(dataset):
    layout = coco_layout(dataset, train_ann="ann/train.json", val_ann="ann/val.json", train_images="pics/train",
                         val_images="pics/val")
    assert layout.classes == tuple(LABELS)
    assert (layout.train_img, layout.test_img, layout.test_ann) == ("pics/train/", "pics/val/", "ann/val.json")
    assert coco_categories(dataset / "ann" / "val.json") == tuple(LABELS)
    # MMDetection's own dataset on the same json: label i is the i-th listed category, named by layout.classes.
    from mmdet.datasets import CocoDataset

    coco = CocoDataset(ann_file=str(dataset / "ann" / "train.json"), metainfo=dict(classes=layout.classes),
                       data_prefix=dict(img=""), pipeline=[])
    names = {c["id"]: c["name"] for c in CATEGORIES}
    assert [layout.classes[coco.cat2label[i]] for i in names] == [names[i] for i in names]


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
    assert "train retinanet__hsfpn (retinanet)" in result.output
    assert "3 classes ['kayak', 'tent', 'cow']" in result.output
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
    assert "| seed 2 | failed | - | - |" in md and f"`{tmp_path / 'w' / 's2'}`" in md
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
    # Image 3 of the training set is missing: --skip-bad trains on the three others and records it.
    (dataset / "pics" / "train" / "003.png").unlink()
    work = tmp_path / "run"
    args = ["train", "--config", str(_own_config(tmp_path)), "--neck", "hsfpn", "--data-root", str(dataset), *PATHS,
            "--work-dir", str(work), "--preset", "smoke", "--img-scale", "64", "--epochs", "2", "--milestones", "2",
            "--batch-per-gpu", "1", "--report-every", "1", "--skip-bad"]
    result = runner.invoke(cli.repro_app, args)
    assert result.exit_code == 0, result.output + (work / "job.log").read_text()[-3000:]
    assert "my_faster_rcnn__hsfpn: done" in result.output and "detect with: hsfpn-repro detect --config" in result.output
    skipped = work / "data_check" / "skipped.json"
    assert f"--skip-bad: 1 problem(s) dropped, recorded in {skipped}" in result.output
    assert [p["file"] for p in json.loads(skipped.read_text())["ann/train.json"]] == ["pics/train/003.png"]
    copy = json.loads(Path(json.loads((work / "train.json").read_text())["data"]["train_ann"]).read_text())
    assert [i["file_name"] for i in copy["images"]] == ["000.png", "001.png", "002.png"]
    done = json.loads((work / "done.json").read_text())
    assert set(done["metrics"]) == {"AP", "AP50", "AP75", "APvt", "APt", "APs", "APm"}
    # Validated during training: the last epoch's checkpoint and the best one kept, no other.
    kept = sorted(p.name for p in work.glob("*.pth") if p.name != "model.pth")
    assert len(kept) == 2 and "epoch_2.pth" in kept and kept[0].startswith("best_aitod_AP_epoch_"), kept
    record = json.loads((work / "train.json").read_text())
    assert record["data"]["classes"] == LABELS and record["settings"]["val_interval"] == 1

    from mmdet.apis import init_detector

    model = init_detector(str(work / "job_config.py"), str(work / "model.pth"), device="cpu")
    assert list(model.dataset_meta["classes"]) == LABELS
    assert model.dataset_meta["category_ids"] == [7, 3, 11]  # what detect writes without --gt
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
    # Validated after each of the two epochs; the last validation gives the job's figures.
    aps = reader.Scalars("aitod/AP")
    assert [a.step for a in aps] == [1, 2] and abs(aps[-1].value - done["raw_metrics"]["aitod/AP"]) < 1e-6
    assert all(math.isfinite(e.value) for e in reader.Scalars("loss"))

    # Finished: a second run skips the job and reports it again.
    again = runner.invoke(cli.repro_app, args)
    assert again.exit_code == 0 and "my_faster_rcnn__hsfpn: skipped (done before)" in again.output


# ---------------------------------------------------------------------------------------------
# Checks before the work starts (issue 23)
# ---------------------------------------------------------------------------------------------


def _args(dataset: Path, work: Path, *extra: str) -> list[str]:
    return ["train", "--data-root", str(dataset), *PATHS, "--work-dir", str(work), *extra]


def test_gpus_without_cuda_stop_before_any_file_is_written(dataset, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    work = tmp_path / "run"
    result = runner.invoke(cli.repro_app, _args(dataset, work, "--config", "faster_rcnn"))  # the paper's --gpus 1
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: --gpus 1: this machine has no CUDA device; --gpus 0 runs the job on the CPU instead, or run it where "
        "the GPUs are"]
    assert not work.exists()
    # One GPU here, two asked for.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    result = runner.invoke(cli.repro_app, _args(dataset, work, "--config", "faster_rcnn", "--gpus", "2",
                                                "--launcher", "pytorch"))
    assert result.exit_code == 1 and "--gpus 2: this machine has only 1 CUDA device(s)" in result.output
    assert not work.exists()


def test_a_dry_run_says_the_gpus_are_missing(dataset, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = runner.invoke(cli.repro_app, _args(dataset, tmp_path / "run", "--config", "faster_rcnn", "--dry-run"))
    assert result.exit_code == 0, result.output
    assert "PROBLEM: --gpus 1: this machine has no CUDA device; --gpus 0 runs the job on the CPU" in result.output


def _resolved(output: str):
    # The resolved config a dry run prints, read back as mmengine reads job_config.py.
    from mmengine.config import Config

    return Config.fromstring(output.split("# ---- resolved config")[1].split("\n", 1)[1], ".py")


def _stock_config() -> Path:
    import mmdet

    return Path(mmdet.__file__).parent / ".mim" / "configs" / "faster_rcnn" / "faster-rcnn_r50_fpn_1x_coco.py"


def test_a_stock_config_that_wants_downloaded_weights_is_one_line(dataset, tmp_path):
    stock = _stock_config()
    result = runner.invoke(cli.repro_app, _args(dataset, tmp_path / "run", "--config", str(stock), "--gpus", "0",
                                                "--dry-run"))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: --config {stock}: model.backbone.init_cfg.checkpoint wants pretrained weights from "
        "torchvision://resnet50, which cannot be downloaded here; give --pretrained DIR holding resnet50-*.pth, or "
        "remove model.backbone.init_cfg (random init)"]
    # --pretrained DIR with torchvision's file: the config reads it from there.
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "resnet50-0676ba61.pth").write_bytes(b"")
    result = runner.invoke(cli.repro_app, _args(dataset, tmp_path / "run", "--config", str(stock), "--gpus", "0",
                                                "--pretrained", str(weights), "--dry-run"))
    assert result.exit_code == 0, result.output
    assert _resolved(result.output).model.backbone.init_cfg.checkpoint == str(weights / "resnet50-0676ba61.pth")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(cli.repro_app, _args(dataset, tmp_path / "run", "--config", str(stock), "--gpus", "0",
                                                "--pretrained", str(empty), "--dry-run"))
    assert result.exit_code == 1 and f"--pretrained {empty} has no resnet50-*.pth" in result.output


def test_the_resolved_config_holds_no_leftover_of_its_base(dataset, tmp_path):
    # The base config's variables (AI-TOD's root and 8 classes, 800 px pipelines, 12 epochs) are rewritten with
    # what the job uses: the file read alone tells the truth.
    result = runner.invoke(cli.repro_app, _args(dataset, tmp_path / "run", "--config", "faster_rcnn", "--gpus", "0",
                                                "--img-scale", "256", "--epochs", "2", "--milestones", "2",
                                                "--dry-run"))
    assert result.exit_code == 0, result.output
    text = result.output.split("# ---- resolved config")[1]
    for leftover in ("data/AI-TOD", "airplane", "wind-mill", "(800, 800)", "max_epochs = 12", "max_epochs=12",
                     "aitod_trainval_v1.json", "aitod_test_v1.json"):
        assert leftover not in text, leftover
    cfg = _resolved(result.output)
    assert (cfg.data_root, cfg.img_scale, cfg.max_epochs) == (f"{dataset}/", (256, 256), 2)
    assert cfg.metainfo.classes == ("kayak", "tent", "cow")
    assert [s.get("scale") for s in cfg.train_pipeline if s.type == "Resize"] == [(256, 256)]
    assert cfg.default_hooks.checkpoint.max_keep_ckpts == 1
    all_kept = runner.invoke(cli.repro_app, _args(dataset, tmp_path / "run", "--config", "faster_rcnn", "--gpus", "0",
                                                  "--keep-checkpoints", "all", "--dry-run"))
    assert _resolved(all_kept.output).default_hooks.checkpoint.max_keep_ckpts == -1
    assert "every epoch's checkpoint kept" in all_kept.output
    bad = runner.invoke(cli.repro_app, _args(dataset, tmp_path / "run", "--config", "faster_rcnn", "--gpus", "0",
                                             "--keep-checkpoints", "some", "--dry-run"))
    assert bad.exit_code == 1 and "keep_checkpoints must be one of last, all, got 'some'" in bad.output


def test_area_from_box_reaches_the_evaluators(dataset, tmp_path):
    result = runner.invoke(cli.repro_app, _args(dataset, tmp_path / "run", "--config", "faster_rcnn", "--gpus", "0",
                                                "--area-from-box", "--dry-run"))
    assert result.exit_code == 0, result.output
    cfg = _resolved(result.output)
    assert cfg.val_evaluator.area_from_box and cfg.test_evaluator.area_from_box


def test_ctrl_c_names_the_checkpoint_a_rerun_resumes_from(dataset, tmp_path, monkeypatch):
    # The runner stops the job and raises JobInterrupted (tests/test_runner.py); the command says where a rerun
    # resumes: the last checkpoint the job recorded.
    from pipelines import training
    from pipelines.job_folder import JobFolder
    from pipelines.runner import JobInterrupted

    work = tmp_path / "run"
    work.mkdir()
    (work / "epoch_2.pth").write_bytes(b"weights")
    (work / "last_checkpoint").write_text(str(work / "epoch_2.pth"))
    JobFolder(work).record_checkpoint(work / "epoch_2.pth")

    def interrupted(jobs, *args, **kwargs):
        raise JobInterrupted(jobs[0])

    monkeypatch.setattr(training, "run_jobs", interrupted)
    result = runner.invoke(cli.repro_app, _args(dataset, work, "--config", "faster_rcnn", "--gpus", "0"))
    assert result.exit_code == 130
    assert result.output.strip().splitlines()[-1] == (
        "interrupted during faster_rcnn__hsfpn; rerun the same command to resume from epoch_2.pth")

    def before_the_job(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "run_jobs", before_the_job)
    fresh = tmp_path / "fresh"
    result = runner.invoke(cli.repro_app, _args(dataset, fresh, "--config", "faster_rcnn", "--gpus", "0"))
    assert result.exit_code == 130
    assert result.output.strip().splitlines()[-1] == (
        "interrupted; no checkpoint yet: rerun the same command to start again")


def test_the_figure_of_a_failed_run_says_why_its_panels_are_empty(dataset, tmp_path):
    from pipelines.training import Curves, _no_ap_text, plan_training, render_png
    from pipelines.presets import resolve_settings

    settings = resolve_settings("smoke", tmp_path / "run", val_interval=1)
    layout = coco_layout(dataset, train_ann="ann/train.json", val_ann="ann/val.json", train_images="pics/train",
                         val_images="pics/val")
    plan = plan_training("faster_rcnn", settings, layout)
    assert _no_ap_text(settings) == ("no validation finished:\nthe run stopped before its first\n(validation every "
                                     "1 epoch(s))")
    assert _no_ap_text(resolve_settings("smoke", tmp_path)).startswith("no validation during training\n(--val-int")
    (tmp_path / "run").mkdir()
    render_png(plan.job.key, {"": Curves()}, tmp_path / "run" / "training.png", settings, failed=True)
    render_png(plan.job.key, {"": Curves(loss={1: 2.0, 2: 1.5}, ap={1: 0.003, 2: 0.012})}, tmp_path / "run" / "ok.png",
               settings)
    assert (tmp_path / "run" / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
