"""The foundation works: mmcv's compiled ops on CPU, MMDetection's registry and a tiny detector, the CLIs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import cli
from pipelines.commands.common import KEY_DEPENDENCIES


def test_mmcv_nms_keeps_the_expected_boxes():
    from mmcv.ops import nms

    # Boxes 0 and 1 overlap with IoU 81 / 119 = 0.68 > 0.5, so the lower-scored box 1 goes; box 2 is apart.
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert dets[:, 4].tolist() == pytest.approx([0.9, 0.7])
    # At 0.7 the pair no longer counts as a duplicate.
    _, keep = nms(boxes, scores, iou_threshold=0.7)
    assert keep.tolist() == [0, 1, 2]


def test_mmcv_roi_align_samples_bin_centres():
    from mmcv.ops import roi_align

    # f(y, x) = 4y + x is linear, so bilinear sampling is exact. With aligned=True the RoI [0, 0, 4, 4]
    # starts at -0.5; 2 x 2 bins of side 2 and one sample each put the samples at y, x in {0.5, 2.5}.
    feat = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0.0, 0.0, 0.0, 4.0, 4.0]])
    # autograd Functions take positional arguments only: (output_size, spatial_scale, sampling_ratio, pool_mode, aligned).
    out = roi_align(feat, rois, (2, 2), 1.0, 1, "avg", True)
    assert out.shape == (1, 1, 2, 2)
    assert out[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]


def tiny_faster_rcnn(num_classes: int = 3) -> dict:
    """A Faster R-CNN with a ResNet-18 backbone: the whole mmdet pipeline at a size CPU tests can afford."""
    return dict(
        type="FasterRCNN",
        data_preprocessor=dict(
            type="DetDataPreprocessor", mean=[123.7, 116.3, 103.5], std=[58.4, 57.1, 57.4], bgr_to_rgb=True,
            pad_size_divisor=32,
        ),
        backbone=dict(type="ResNet", depth=18, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
                      norm_cfg=dict(type="BN", requires_grad=True), norm_eval=True, style="pytorch"),
        neck=dict(type="FPN", in_channels=[64, 128, 256, 512], out_channels=32, num_outs=5),
        rpn_head=dict(
            type="RPNHead", in_channels=32, feat_channels=32,
            anchor_generator=dict(type="AnchorGenerator", scales=[2], ratios=[0.5, 1.0, 2.0],
                                  strides=[4, 8, 16, 32, 64]),
            bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        ),
        roi_head=dict(
            type="StandardRoIHead",
            bbox_roi_extractor=dict(type="SingleRoIExtractor",
                                    roi_layer=dict(type="RoIAlign", output_size=7, sampling_ratio=0),
                                    out_channels=32, featmap_strides=[4, 8, 16, 32]),
            bbox_head=dict(type="Shared2FCBBoxHead", in_channels=32, fc_out_channels=64, roi_feat_size=7,
                           num_classes=num_classes,
                           bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4,
                                           target_stds=[0.1, 0.1, 0.2, 0.2]),
                           reg_class_agnostic=False,
                           loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
                           loss_bbox=dict(type="L1Loss", loss_weight=1.0)),
        ),
        train_cfg=dict(
            rpn=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                                   match_low_quality=True, ignore_iof_thr=-1),
                     sampler=dict(type="RandomSampler", num=64, pos_fraction=0.5, neg_pos_ub=-1,
                                  add_gt_as_proposals=False),
                     allowed_border=-1, pos_weight=-1, debug=False),
            rpn_proposal=dict(nms_pre=200, max_per_img=100, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0),
            rcnn=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                                    match_low_quality=False, ignore_iof_thr=-1),
                      sampler=dict(type="RandomSampler", num=64, pos_fraction=0.25, neg_pos_ub=-1,
                                   add_gt_as_proposals=True),
                      pos_weight=-1, debug=False),
        ),
        test_cfg=dict(
            rpn=dict(nms_pre=200, max_per_img=100, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0),
            rcnn=dict(score_thr=0.0, nms=dict(type="nms", iou_threshold=0.5), max_per_img=50),
        ),
    )


def _batch(size: int = 128):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    torch.manual_seed(0)
    sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0),
                                         pad_shape=(size, size), batch_input_shape=(size, size)))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[10.0, 12.0, 30.0, 28.0], [60.0, 64.0, 70.0, 80.0]]), labels=torch.tensor([0, 2])
    )
    return dict(inputs=[torch.randint(0, 256, (3, size, size), dtype=torch.uint8)], data_samples=[sample])


def test_tiny_faster_rcnn_builds_and_trains_one_step_on_cpu():
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mmengine.config import ConfigDict

    register_all_modules(init_default_scope=True)
    torch.manual_seed(0)
    # Detectors read train_cfg.rpn as attributes: configs reach them as ConfigDicts, as from a config file.
    model = MODELS.build(ConfigDict(tiny_faster_rcnn()))
    model.init_weights()
    model.train()
    data = model.data_preprocessor(_batch(), training=True)
    assert tuple(data["inputs"].shape) == (1, 3, 128, 128)
    losses = model(**data, mode="loss")
    assert {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "acc"} <= set(losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total) and total.item() > 0
    total.backward()
    head_grad = model.roi_head.bbox_head.fc_cls.weight.grad
    assert head_grad is not None and head_grad.abs().sum().item() > 0
    # Frozen stem (frozen_stages=1) gets no gradient: the config is honoured, not just parsed.
    assert model.backbone.conv1.weight.grad is None

    model.eval()
    with torch.no_grad():
        (result,) = model(**model.data_preprocessor(_batch(), training=False), mode="predict")
    preds = result.pred_instances
    assert preds.bboxes.shape[1] == 4 and len(preds.bboxes) == len(preds.scores) == len(preds.labels) <= 50


runner = CliRunner()


@pytest.mark.parametrize("app", [cli.data_app, cli.repro_app])
def test_cli_apps_answer_help(app):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_cli_version_reports_dependencies_and_ops():
    result = runner.invoke(cli.repro_app, ["--version"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("hsfpn-toolkit ") and "not installed" not in lines[0]
    for name in KEY_DEPENDENCIES:
        line = next(line for line in lines if line.startswith(name + " "))
        assert "not installed" not in line, line
    assert lines[-1] == "mmcv compiled ops load: yes"


@pytest.mark.parametrize("script", ["hsfpn-data", "hsfpn-repro"])
def test_console_scripts_are_installed_and_respond(script):
    exe = Path(sys.executable).parent / script
    path = str(exe) if exe.exists() else shutil.which(script)
    assert path, f"console script {script} is not installed"
    done = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert script in done.stdout
