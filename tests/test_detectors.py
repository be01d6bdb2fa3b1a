"""Job config resolution: the neck as a parameter, label assignment, pretrained weights, schedule, settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.datasets import DatasetLayout
from pipelines.detectors import (
    DETECTORS,
    VARIANTS,
    NotAvailableError,
    build_job_config,
    cap_per_image,
    load_detector_config,
    pretrained_file,
    swap_neck,
)
from pipelines.errors import PipelineError
from pipelines.presets import resolve_settings

LAYOUT = DatasetLayout("synthetic", Path("/data"), ("box", "disc"), "a/train.json", "i/train/", "a/test.json", "i/test/")
REPRODUCED = [k for k, d in DETECTORS.items() if d.reproduced]


def test_swap_keeps_fpn_levels_and_channels():
    model = dict(backbone=dict(type="ResNet"), neck=dict(type="FPN", in_channels=[24, 32, 96, 1280], out_channels=256,
                 num_outs=5, start_level=0, add_extra_convs="on_input"))
    out = swap_neck(model, VARIANTS["hsfpn"])
    assert out["neck"] == dict(type="HSFPN", in_channels=[24, 32, 96, 1280], out_channels=256, num_outs=5, start_level=0,
                               add_extra_convs="on_input", ratio=(0.25, 0.25), channel_path=True, spatial_path=True, sdp=True)
    assert model["neck"]["type"] == "FPN"  # the input is not changed
    assert swap_neck(model, VARIANTS["fpn"]) == model


@pytest.mark.parametrize(
    ("variant", "flags"),
    [("cp", (True, False, False)), ("sp", (False, True, False)), ("hfp", (True, True, False)),
     ("sdp", (False, False, True)), ("hfp_a0.75", (True, True, False))],
)
def test_ablation_variants_set_the_hsfpn_switches(variant, flags):
    neck = swap_neck(dict(neck=dict(type="FPN", in_channels=[1], out_channels=8, num_outs=1)), VARIANTS[variant])["neck"]
    assert (neck["channel_path"], neck["spatial_path"], neck["sdp"]) == flags
    assert neck["ratio"] == ((0.75, 0.75) if variant == "hfp_a0.75" else (0.25, 0.25))


def test_detectors_rfp_is_replaced_and_the_backbone_stops_emitting_the_image():
    cfg = load_detector_config(DETECTORS["detectors"])
    out = swap_neck(cfg.model.to_dict(), VARIANTS["hsfpn"])
    assert out["neck"]["type"] == "HSFPN" and "rfp_backbone" not in out["neck"]
    assert out["backbone"]["type"] == "DetectoRS_ResNet" and out["backbone"]["output_img"] is False
    assert out["backbone"]["sac"] == {"type": "SAC", "use_deform": True}


def test_unknown_neck_cannot_be_swapped():
    with pytest.raises(PipelineError, match="only FPN and RFP"):
        swap_neck(dict(neck=dict(type="PAFPN")), VARIANTS["hsfpn"])


@pytest.mark.parametrize("key", REPRODUCED)
def test_every_config_has_the_aitod_settings(key):
    cfg = load_detector_config(DETECTORS[key])
    assert cfg.custom_imports == {"imports": ["hsfpn"], "allow_failed_imports": False}
    assert cfg.train_cfg.max_epochs == 12 and cfg.param_scheduler[1].milestones == [8, 11]
    assert cfg.param_scheduler[0].end == 500 and cfg.param_scheduler[0].start_factor == 0.001
    opt = cfg.optim_wrapper.optimizer
    one_stage = key in ("atss", "retinanet")
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ("SGD", 0.001 if one_stage else 0.005, 0.9, 0.0001)
    assert cfg.train_dataloader.batch_size == 1 and cfg.auto_scale_lr.base_batch_size == 2
    assert cfg.test_evaluator.type == "AITODMetric"
    assert cfg.train_dataloader.dataset.pipeline[2] == {"type": "Resize", "scale": (800, 800), "keep_ratio": True}
    assert cfg.model.backbone.get("init_cfg") is None  # nothing is downloaded: weights come from --pretrained
    if one_stage:
        anchors = cfg.model.bbox_head.anchor_generator
        assert anchors.octave_base_scale == 2 and anchors.strides == [4, 8, 16, 32, 64]
        assert cfg.model.test_cfg.max_per_img == 3000
    else:
        assert cfg.model.test_cfg.rpn.max_per_img == 3000 and cfg.model.train_cfg.rpn_proposal.max_per_img == 3000
        assert cfg.model.test_cfg.rcnn == {"score_thr": 0.05, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 3000}
        if key != "cascade_rpn":  # Cascade RPN's adaptive convolution needs one anchor per location
            anchors = cfg.model.rpn_head.anchor_generator
            assert anchors.scales == [2] and anchors.ratios == [0.33, 0.5, 1.0, 2.0, 3.0]


def test_cascade_rcnn_matches_the_authors_stages():
    cfg = load_detector_config(DETECTORS["cascade_rcnn"])
    assert cfg.model.roi_head.stage_loss_weights == [1, 0.5, 0.25]
    assert [s.assigner.pos_iou_thr for s in cfg.model.train_cfg.rcnn] == [0.5, 0.6, 0.7]
    assert all(s.sampler.num == 512 and s.sampler.pos_fraction == 0.25 for s in cfg.model.train_cfg.rcnn)


def test_pretrained_lookup(tmp_path):
    assert pretrained_file(DETECTORS["faster_rcnn"], None) is None
    (tmp_path / "resnet50-19c8e357.pth").write_bytes(b"x")
    assert pretrained_file(DETECTORS["cascade_rcnn"], tmp_path) == (tmp_path / "resnet50-19c8e357.pth").resolve()
    with pytest.raises(PipelineError, match="no R-101 weights; expected one of resnet101-63fe2227.pth"):
        pretrained_file(DETECTORS["faster_rcnn_r101"], tmp_path)


def test_build_job_config_applies_everything(tmp_path):
    (tmp_path / "resnet50-0676ba61.pth").write_bytes(b"x")
    s = resolve_settings("smoke", tmp_path / "w", pretrained=tmp_path, max_epochs=4, milestones=(3,))
    cfg = build_job_config(DETECTORS["detectors"], VARIANTS["fpn"], LAYOUT, s)
    weights = str((tmp_path / "resnet50-0676ba61.pth").resolve())
    assert cfg.model.backbone.init_cfg == {"type": "Pretrained", "checkpoint": weights}
    assert cfg.model.neck.rfp_backbone.pretrained == weights  # RFP's unrolled backbone too
    assert cfg.train_cfg.max_epochs == 4 and cfg.param_scheduler[1].milestones == [3]
    assert cfg.param_scheduler[0].end == 50 and cfg.optim_wrapper.optimizer.lr == 0.01  # 2 x 0.005
    assert cfg.optim_wrapper.clip_grad == {"max_norm": 35.0, "norm_type": 2}
    assert cfg.train_dataloader.batch_size == 2 and cfg.train_dataloader.num_workers == 0
    assert cfg.train_dataloader.dataset.pipeline[2].scale == (256, 256)
    assert cfg.model.test_cfg.rpn.max_per_img == 300 and cfg.model.test_cfg.rcnn.max_per_img == 300
    assert [h.num_classes for h in cfg.model.roi_head.bbox_head] == [2, 2, 2]
    assert cfg.env_cfg.dist_cfg == {"backend": "gloo"}


def test_lr_factor_scales_each_configs_own_lr():
    s = resolve_settings("smoke", Path("w"))
    assert build_job_config(DETECTORS["retinanet"], VARIANTS["fpn"], LAYOUT, s).optim_wrapper.optimizer.lr == 0.002


def test_label_assignment_rows_merge_the_assigner():
    s = resolve_settings("paper", Path("w"))
    cfg = build_job_config(DETECTORS["cascade_rcnn_nwd"], VARIANTS["hsfpn"], LAYOUT, s)
    assert cfg.model.train_cfg.rpn.assigner.type == "RankingAssigner"
    assert "pos_iou_thr" not in cfg.model.train_cfg.rpn.assigner  # replaced, not merged
    assert cfg.model.neck.type == "HSFPN"
    rfla = build_job_config(DETECTORS["faster_rcnn_rfla"], VARIANTS["fpn"], LAYOUT, s)
    assert rfla.model.rpn_head.anchor_generator.type == "RFGenerator"


def test_rows_without_components_are_not_available():
    s = resolve_settings("paper", Path("w"))
    with pytest.raises(NotAvailableError, match="not reproduced"):
        build_job_config(DETECTORS["menet"], VARIANTS["fpn"], LAYOUT, s)


def test_cap_per_image_only_lowers():
    model = dict(train_cfg=dict(rpn_proposal=dict(nms_pre=3000, max_per_img=3000)),
                 test_cfg=dict(rpn=dict(nms_pre=3000, max_per_img=100), rcnn=[dict(max_per_img=3000)]))
    cap_per_image(model, 300)
    assert model["train_cfg"]["rpn_proposal"] == {"nms_pre": 300, "max_per_img": 300}
    assert model["test_cfg"]["rpn"] == {"nms_pre": 300, "max_per_img": 100}
    assert model["test_cfg"]["rcnn"] == [{"max_per_img": 300}]


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "fpn"])
def test_every_hsfpn_variant_builds_and_runs(variant):
    import torch
    from mmdet.registry import MODELS

    import hsfpn  # noqa: F401  (registers HSFPN)

    fpn = dict(type="FPN", in_channels=[32, 64, 128, 256], out_channels=32, num_outs=5)
    neck = MODELS.build(swap_neck(dict(neck=fpn), VARIANTS[variant])["neck"])
    feats = tuple(torch.rand(1, c, 64 // 2**i, 64 // 2**i) for i, c in enumerate([32, 64, 128, 256]))
    outs = neck(feats)
    assert [tuple(o.shape[2:]) for o in outs] == [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4)]


def test_random_init_trains_every_stage_and_batch_statistics_pretrained_keeps_the_frozen_stem(tmp_path):
    s = resolve_settings("smoke", tmp_path / "w")
    backbone = build_job_config(DETECTORS["faster_rcnn"], VARIANTS["fpn"], LAYOUT, s).model.backbone
    assert (backbone.frozen_stages, backbone.norm_eval) == (-1, False)
    (tmp_path / "resnet50-0676ba61.pth").write_bytes(b"x")
    pre = resolve_settings("smoke", tmp_path / "w", pretrained=tmp_path)
    backbone = build_job_config(DETECTORS["faster_rcnn"], VARIANTS["fpn"], LAYOUT, pre).model.backbone
    assert (backbone.frozen_stages, backbone.norm_eval) == (1, True)  # the paper's setting on ImageNet weights


@pytest.mark.parametrize("row", ["retinanet", "faster_rcnn", "cascade_rcnn"])
def test_compact_model_thins_backbone_neck_and_heads_and_builds(row):
    import torch
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import hsfpn  # noqa: F401  (registers HSFPN)
    from pipelines.presets import CompactModel

    s = resolve_settings("smoke", Path("w"), compact=CompactModel(depth=18, base_channels=16, neck_channels=32,
                                                                   head_channels=64))
    cfg = build_job_config(DETECTORS[row], VARIANTS["hsfpn"], LAYOUT, s)
    m = cfg.model
    assert (m.backbone.depth, m.backbone.base_channels) == (18, 16)
    assert m.neck.in_channels == [16, 32, 64, 128] and m.neck.out_channels == 32 and m.neck.type == "HSFPN"
    text = cfg.pretty_text
    assert "=256" not in text.replace("num=256", "") and "fc_out_channels=1024" not in text
    init_default_scope("mmdet")
    model = MODELS.build(m)
    model.train()
    size = 64
    sample = _sample(size)
    losses = model.loss(torch.rand(1, 3, size, size), [sample])
    assert all(torch.isfinite(v).all() for k, v in losses.items() if "loss" in k and isinstance(v, torch.Tensor))


def _sample(size):
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0),
                                         pad_shape=(size, size), batch_input_shape=(size, size)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[8.0, 8.0, 24.0, 20.0]]), labels=torch.tensor([1]))
    return sample


def test_compact_model_needs_a_resnet():
    from pipelines.presets import CompactModel

    s = resolve_settings("smoke", Path("w"), compact=CompactModel())
    with pytest.raises(PipelineError, match="compact model replaces ResNet backbones only, got 'MobileNetV2'"):
        build_job_config(DETECTORS["faster_rcnn_mnv2"], VARIANTS["fpn"], LAYOUT, s)


def test_train_crop_cuts_after_the_resize_of_training_only():
    s = resolve_settings("smoke", Path("w"), img_scale=256, train_crop=128)
    cfg = build_job_config(DETECTORS["faster_rcnn"], VARIANTS["fpn"], LAYOUT, s)
    steps = [step["type"] for step in cfg.train_dataloader.dataset.pipeline]
    assert steps[steps.index("Resize") + 1] == "RandomCrop"
    crop = cfg.train_dataloader.dataset.pipeline[steps.index("RandomCrop")]
    assert crop["crop_size"] == (128, 128) and crop["allow_negative_crop"] is False
    assert "RandomCrop" not in [step["type"] for step in cfg.test_dataloader.dataset.pipeline]
