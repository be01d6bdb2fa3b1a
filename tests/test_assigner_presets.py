"""hsfpn.assigners.presets: structure, merge rules and one CPU training step per w/NWD and w/RFLA detector."""

from __future__ import annotations

import copy

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import ConfigDict
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData

from hsfpn.assigners import HieAssigner, RankingAssigner, RFGenerator
from hsfpn.assigners.presets import apply_label_assignment, label_assignment_overrides, merge_overrides

# ---- minimal detectors (ResNet-18, 32-channel FPN, 128 x 128 inputs, 3 classes) ----

NUM_CLASSES = 3


def _bbox_head(stds: list[float]) -> dict:
    return dict(
        type="Shared2FCBBoxHead",
        in_channels=32,
        fc_out_channels=64,
        roi_feat_size=7,
        num_classes=NUM_CLASSES,
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=stds),
        reg_class_agnostic=True,
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0),
    )


def _rcnn_stage(iou: float) -> dict:
    return dict(
        assigner=dict(
            type="MaxIoUAssigner", pos_iou_thr=iou, neg_iou_thr=iou, min_pos_iou=iou, match_low_quality=False
        ),
        sampler=dict(type="RandomSampler", num=64, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
        pos_weight=-1,
        debug=False,
    )


def two_stage_model(cascade: bool) -> dict:
    """A small Faster R-CNN or Cascade R-CNN with the AI-TOD anchors (scale 2, five ratios, P2..P6)."""
    roi_extractor = dict(
        type="SingleRoIExtractor",
        roi_layer=dict(type="RoIAlign", output_size=7, sampling_ratio=0),
        out_channels=32,
        featmap_strides=[4, 8, 16, 32],
    )
    if cascade:
        roi_head = dict(
            type="CascadeRoIHead",
            num_stages=3,
            stage_loss_weights=[1, 0.5, 0.25],
            bbox_roi_extractor=roi_extractor,
            bbox_head=[
                _bbox_head([0.1, 0.1, 0.2, 0.2]),
                _bbox_head([0.05, 0.05, 0.1, 0.1]),
                _bbox_head([0.033, 0.033, 0.067, 0.067]),
            ],
        )
        rcnn = [_rcnn_stage(0.5), _rcnn_stage(0.6), _rcnn_stage(0.7)]
    else:
        roi_head = dict(
            type="StandardRoIHead", bbox_roi_extractor=roi_extractor, bbox_head=_bbox_head([0.1, 0.1, 0.2, 0.2])
        )
        rcnn = _rcnn_stage(0.5)
    proposal = dict(nms_pre=300, max_per_img=100, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0)
    return dict(
        type="CascadeRCNN" if cascade else "FasterRCNN",
        data_preprocessor=dict(
            type="DetDataPreprocessor",
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_size_divisor=32,
        ),
        backbone=dict(
            type="ResNet",
            depth=18,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            frozen_stages=-1,
            norm_cfg=dict(type="BN", requires_grad=True),
            norm_eval=False,
            style="pytorch",
        ),
        neck=dict(type="FPN", in_channels=[64, 128, 256, 512], out_channels=32, num_outs=5),
        rpn_head=dict(
            type="RPNHead",
            in_channels=32,
            feat_channels=32,
            anchor_generator=dict(
                type="AnchorGenerator", scales=[2], ratios=[0.33, 0.5, 1.0, 2.0, 3.0], strides=[4, 8, 16, 32, 64]
            ),
            bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        ),
        roi_head=roi_head,
        train_cfg=dict(
            rpn=dict(
                assigner=dict(
                    type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3, match_low_quality=True
                ),
                sampler=dict(type="RandomSampler", num=64, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False),
                allowed_border=-1,
                pos_weight=-1,
                debug=False,
            ),
            rpn_proposal=proposal,
            rcnn=rcnn,
        ),
        test_cfg=dict(
            rpn=proposal, rcnn=dict(score_thr=0.05, nms=dict(type="nms", iou_threshold=0.5), max_per_img=100)
        ),
    )


def tiny_batch() -> dict:
    """One 128 x 128 image with four tiny objects (4-12 px) and one 30 px object."""
    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, 128, 128), dtype=torch.uint8, generator=gen)
    sample = DetDataSample(metainfo=dict(img_shape=(128, 128), ori_shape=(128, 128), scale_factor=(1.0, 1.0)))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor(
            [[10.0, 12, 18, 20], [40, 40, 46, 44], [70, 20, 82, 31], [100, 90, 104, 96], [20, 70, 50, 100]]
        ),
        labels=torch.tensor([0, 1, 2, 0, 1]),
    )
    return dict(inputs=[image], data_samples=[sample])


# ---- structure ----


@pytest.mark.parametrize("detector", ["faster_rcnn", "cascade_rcnn", "detectors"])
def test_nwd_overrides_replace_the_rpn_assigner_only(detector):
    o = label_assignment_overrides(detector, "nwd")
    assert set(o) == {"train_cfg"}
    assert set(o["train_cfg"]) == {"rpn"}
    assert o["train_cfg"]["rpn"]["assigner"] == dict(
        _delete_=True,
        type="RankingAssigner",
        topk=3,
        neg_thr=0.3,
        iou_calculator=dict(type="NWDOverlaps", constant=12.8),
    )


@pytest.mark.parametrize("detector", ["faster_rcnn", "cascade_rcnn", "detectors"])
def test_rfla_overrides_replace_prior_generator_and_rpn_assigner(detector):
    o = label_assignment_overrides(detector, "rfla")
    assert o["rpn_head"]["anchor_generator"] == dict(
        _delete_=True, type="RFGenerator", strides=[4, 8, 16, 32, 64], fraction=0.5, depth=50, ratios=[0.5, 1.0, 2.0]
    )
    assigner = o["train_cfg"]["rpn"]["assigner"]
    assert (assigner["type"], assigner["topk"], assigner["ratio"]) == ("HieAssigner", (3, 1), 0.9)
    assert "rcnn" not in o["train_cfg"]


def test_rcnn_nwd_option_per_stage():
    faster = label_assignment_overrides("faster_rcnn", "nwd", rcnn_metric="nwd")["train_cfg"]["rcnn"]
    assert faster == dict(assigner=dict(iou_calculator=dict(type="NWDOverlaps", constant=12.8)))
    cascade = label_assignment_overrides("detectors", "nwd", rcnn_metric="nwd", nwd_constant=16.0)["train_cfg"]["rcnn"]
    assert sorted(cascade) == ["0", "1", "2"]  # stage indices, mmengine's list-merge keys
    assert cascade["2"]["assigner"]["iou_calculator"]["constant"] == 16.0


def test_unknown_names_are_rejected():
    # Closed sets: three detectors, two methods, two R-CNN metrics.
    with pytest.raises(ValueError, match="detector"):
        label_assignment_overrides("retinanet", "nwd")
    with pytest.raises(ValueError, match="method"):
        label_assignment_overrides("faster_rcnn", "atss")
    with pytest.raises(ValueError, match="rcnn_metric"):
        label_assignment_overrides("faster_rcnn", "nwd", rcnn_metric="giou")


def test_merge_rules():
    base = dict(a=dict(x=1, y=2), b=[dict(p=1, q=2), dict(p=3, q=4)], c=5)
    merged = merge_overrides(base, dict(a=dict(_delete_=True, z=9), b={"1": dict(q=0)}, c=6))
    assert merged == dict(a=dict(z=9), b=[dict(p=1, q=2), dict(p=3, q=0)], c=6)
    assert base["a"] == dict(x=1, y=2)  # the input is not modified
    assert merge_overrides(dict(a=dict(x=1)), dict(a=dict(y=2))) == dict(a=dict(x=1, y=2))
    assert merge_overrides([1, 2], [3]) == [3]  # a list replaces a list
    with pytest.raises(ValueError, match="past the end"):
        merge_overrides([dict(a=1)], {"1": dict(a=2)})


@pytest.mark.parametrize("cascade", [False, True])
@pytest.mark.parametrize("method", ["nwd", "rfla"])
def test_mmengine_merge_gives_the_same_config(cascade, method):
    # The table3 runner merges with mmengine's Config.merge_from_dict: same result as our merge.
    from mmengine.config import Config

    detector = "cascade_rcnn" if cascade else "faster_rcnn"
    cfg = Config(dict(model=two_stage_model(cascade)))
    cfg.merge_from_dict(dict(model=label_assignment_overrides(detector, method, rcnn_metric="nwd")))
    ours = apply_label_assignment(two_stage_model(cascade), detector, method, rcnn_metric="nwd")
    assert cfg.model.to_dict() == ConfigDict(ours).to_dict()


def test_apply_keeps_everything_else():
    model = two_stage_model(cascade=True)
    out = apply_label_assignment(model, "cascade_rcnn", "nwd", rcnn_metric="nwd")
    assert out["train_cfg"]["rpn"]["sampler"] == model["train_cfg"]["rpn"]["sampler"]
    assert "pos_iou_thr" not in out["train_cfg"]["rpn"]["assigner"]  # replaced, not merged
    stage = out["train_cfg"]["rcnn"][1]["assigner"]
    assert (stage["type"], stage["pos_iou_thr"]) == ("MaxIoUAssigner", 0.6)
    assert stage["iou_calculator"]["type"] == "NWDOverlaps"
    assert model == two_stage_model(cascade=True)
    with pytest.raises(ValueError, match="two-stage"):
        apply_label_assignment(dict(type="RetinaNet"), "faster_rcnn", "nwd")


# ---- one training step on CPU ----


@pytest.mark.parametrize(
    ("cascade", "method"),
    [(False, "nwd"), (False, "rfla"), (True, "nwd"), (True, "rfla")],
    ids=["faster-nwd", "faster-rfla", "cascade-nwd", "cascade-rfla"],
)
def test_one_training_step(cascade, method):
    register_all_modules(init_default_scope=True)
    torch.manual_seed(0)
    detector = "cascade_rcnn" if cascade else "faster_rcnn"
    cfg = apply_label_assignment(two_stage_model(cascade), detector, method)
    model = MODELS.build(ConfigDict(copy.deepcopy(cfg)))  # mmdet reads train_cfg by attribute
    if method == "nwd":
        assert isinstance(model.rpn_head.assigner, RankingAssigner)
    else:
        assert isinstance(model.rpn_head.assigner, HieAssigner)
        assert isinstance(model.rpn_head.prior_generator, RFGenerator)
        assert model.rpn_head.num_base_priors == 3  # the release's three prior ratios per point
    before = [p.detach().clone() for p in model.rpn_head.parameters()]
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    log_vars = model.train_step(tiny_batch(), optim)
    for name, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)).all(), name
    # The RPN got positives (a regression loss) and every R-CNN stage trained.
    assert float(log_vars["loss_rpn_bbox"]) > 0
    assert float(log_vars["loss"]) > 0
    stages = [f"s{i}.loss_cls" for i in range(3)] if cascade else ["loss_cls"]
    assert all(key in log_vars for key in stages)
    after = list(model.rpn_head.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before))
