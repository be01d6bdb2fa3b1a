"""Tests of hsfpn.neck: the HSFPN neck in MMDetection 3 (an adapter over hsfpn.nn, see test_nn.py)."""

from __future__ import annotations

import math

import pytest
import torch
from mmdet.models.necks import FPN
from mmdet.registry import MODELS

import hsfpn.mmdet  # noqa: F401  (registers HSFPN)
from hsfpn.neck import HSFPN

CH = [32, 64, 128, 256]


def resnet_sizes(h: int, w: int) -> list[tuple[int, int]]:
    """C2..C5 sizes a ResNet gives for an h x w image (every stride-2 layer rounds up)."""
    sizes = []
    for _ in range(5):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
        sizes.append((h, w))
    return sizes[1:]


def feats(h: int, w: int, channels=CH, batch: int = 1, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, *s, generator=g) for c, s in zip(channels, resnet_sizes(h, w))]


def off(**kwargs) -> dict:
    return dict(channel_path=False, spatial_path=False, sdp=False, **kwargs)


def test_builds_through_the_registry():
    neck = MODELS.build(dict(type="HSFPN", in_channels=CH, out_channels=64, num_outs=5))
    assert isinstance(neck, HSFPN)
    assert len(neck.hfps) == 4 and len(neck.sdps) == 3
    assert [h.high_pass is not None for h in neck.hfps] == [True, True, False, False]
    assert [h.channel_path.pool_size for h in neck.hfps] == [16, 8, 1, 1]


@pytest.mark.parametrize("size", [(803, 797), (640, 480), (20, 20), (97, 33)])
def test_output_shapes_equal_fpn_for_any_size(size):
    # (20, 20) gives a 1 x 1 C5 map; (97, 33) gives sides that halve unevenly at every level.
    x = feats(*size)
    fpn = FPN(CH, 64, 5).eval()
    neck = HSFPN(CH, 64, 5).eval()
    with torch.no_grad():
        ours, ref = neck(x), fpn(x)
    assert [o.shape for o in ours] == [o.shape for o in ref]
    assert all(torch.isfinite(o).all() for o in ours)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_outs=5),
        dict(num_outs=5, add_extra_convs="on_input"),
        dict(num_outs=5, add_extra_convs="on_lateral", relu_before_extra_convs=True),
        dict(num_outs=6, add_extra_convs="on_output"),
        dict(num_outs=3, start_level=1),
        dict(num_outs=3, end_level=2),
        dict(num_outs=5, norm_cfg=dict(type="GN", num_groups=8), no_norm_on_lateral=True),
        dict(num_outs=4, upsample_cfg=dict(scale_factor=2, mode="nearest")),
    ],
)
def test_all_off_is_mmdet_fpn(kwargs):
    torch.manual_seed(0)
    fpn = FPN(CH, 64, **kwargs).eval()
    neck = HSFPN(CH, 64, **kwargs, **off()).eval()
    assert list(neck.state_dict()) == list(fpn.state_dict())
    neck.load_state_dict(fpn.state_dict(), strict=True)
    x = feats(128, 128)
    with torch.no_grad():
        ours, ref = neck(x), fpn(x)
    assert len(ours) == len(ref)
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))


def test_only_sdp_has_no_hfp_and_changes_the_output():
    neck = HSFPN(CH, 64, 5, channel_path=False, spatial_path=False).eval()
    assert neck.hfps is None and len(neck.sdps) == 3
    fpn = FPN(CH, 64, 5).eval()
    fpn.load_state_dict({k: v for k, v in neck.state_dict().items() if not k.startswith("sdps.")})
    x = feats(64, 64)
    with torch.no_grad():
        assert not torch.allclose(neck(x)[0], fpn(x)[0])
        # The top level has no SDP and no HFP here: P5 equals FPN's.
        assert torch.equal(neck(x)[3], fpn(x)[3])


def test_parameter_counts_per_variant():
    # REFERENCE section 1 arithmetic at C = 256 with ResNet-50 channels.
    c50 = [256, 512, 1024, 2048]
    fpn = sum(p.numel() for p in FPN(c50, 256, 5).parameters())

    def extra(**kw):
        return sum(p.numel() for p in HSFPN(c50, 256, 5, **kw).parameters()) - fpn

    assert extra() == 2_775_552
    assert extra(sdp=False) == 4 * 590_592 + 4 * 4_096 + 2 * 256  # only HFP
    assert extra(sdp=False, spatial_path=False) == 4 * 590_592 + 4 * 4_096  # only CP
    assert extra(sdp=False, channel_path=False) == 4 * 590_592 + 2 * 256  # only SP
    assert extra(channel_path=False, spatial_path=False) == 3 * 132_096  # only SDP
    assert extra(channel_fusion="concat") == 2_775_552 + 4 * 2_048


def test_gradients_reach_every_parameter():
    neck = HSFPN(CH, 64, 5, add_extra_convs="on_input")
    x = [t.requires_grad_(True) for t in feats(64, 48, batch=2)]
    sum(o.square().mean() for o in neck(x)).backward()
    missing = [n for n, p in neck.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
    assert all(t.grad is not None for t in x)


def test_xavier_uniform_init_and_unit_groupnorm():
    torch.manual_seed(0)
    neck = HSFPN(CH, 64, 5)
    neck.init_weights()
    for name, m in neck.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]  # torch: weight.size(0) * k
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            assert m.weight.abs().max() <= bound + 1e-6, name
            # Uniform over [-b, b] fills most of the range (Kaiming's bound for these convs is larger).
            assert m.weight.abs().max() > 0.5 * bound, name
            if m.bias is not None:
                assert torch.count_nonzero(m.bias) == 0, name
        elif isinstance(m, torch.nn.GroupNorm):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.count_nonzero(m.bias) == 0


def test_bf16_autocast_runs_and_stays_close():
    torch.manual_seed(0)
    neck = HSFPN(CH, 64, 5).eval()
    x = feats(96, 96)
    with torch.no_grad():
        ref = neck(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = neck(x)
    for a, b in zip(low, ref):
        assert a.shape == b.shape and torch.isfinite(a).all()
        assert float((a.float() - b).abs().max() / b.abs().max()) < 0.1


def test_ablation_switches():
    neck = HSFPN(CH, 64, 5, dct_levels=(), pool_sizes=(1, 1, 1, 1), ratio=(0.5, 0.5))
    assert all(h.high_pass is None for h in neck.hfps)
    neck = HSFPN(CH, 64, 5, dct_levels=(0, 1, 2, 3))
    assert [h.channel_path.pool_size for h in neck.hfps] == [16, 8, 4, 2]
    assert neck.hfps[0].high_pass.ratio == (0.25, 0.25)
    # alpha = 0: the DCT levels' response is the map itself, so they equal the non-DCT maths on F = C
    # only in the spatial path; here just check the switch reaches the filters.
    neck = HSFPN(CH, 64, 5, ratio=(0.0, 0.0))
    assert neck.hfps[0].high_pass.ratio == (0.0, 0.0)
    x = feats(64, 64)
    assert [o.shape for o in neck(x)] == [o.shape for o in FPN(CH, 64, 5)(x)]


def test_rejects_invalid_configs():
    # One pooling grid per used level.
    with pytest.raises(ValueError, match="pool_sizes"):
        HSFPN(CH, 64, 5, pool_sizes=(16, 8))
    # DCT levels index the used levels.
    with pytest.raises(ValueError, match="dct_levels"):
        HSFPN(CH, 64, 5, dct_levels=(0, 4))
    # alpha is a fraction of each side.
    with pytest.raises(ValueError, match="ratio"):
        HSFPN(CH, 64, 5, ratio=(0.25, 2.0))
    # Grouped convs and GroupNorm(32) need out_channels divisible by 32 (FPN alone does not).
    with pytest.raises(ValueError, match="divisible by 32"):
        HSFPN(CH, 48, 5)
    HSFPN(CH, 48, 5, **off())
    # Channel fusion is a closed set.
    with pytest.raises(ValueError, match="channel_fusion"):
        HSFPN(CH, 64, 5, channel_fusion="max")
    # forward needs one map per input level.
    with pytest.raises(ValueError, match="expects 4 input maps"):
        HSFPN(CH, 64, 5)(feats(64, 64)[:3])


def test_extra_macs_by_hand():
    neck = HSFPN(CH, 64, 4, channel_path=False, spatial_path=False)
    x = feats(64, 64)  # C2..C5: 16, 8, 4, 2; blocks 2 x 2 (4 tokens)
    # attention at levels 0..2: pixels/4 blocks x 2 * 4 * 4 * 64
    expected = sum((s * s // 4) * 2 * 16 * 64 for s in (16, 8, 4))
    assert neck.extra_macs(x) == expected


def _train_step(model_cfg: dict, size: int = 128) -> None:
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    from mmengine.config import ConfigDict
    from mmengine.optim import OptimWrapper
    from mmengine.registry import DefaultScope
    from mmengine.structures import InstanceData

    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    # The data preprocessor resolves in the 'mmdet' scope.
    with DefaultScope.overwrite_default_scope("mmdet"):
        model = MODELS.build(ConfigDict(model_cfg))
    model.init_weights()
    model.train()
    sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0),
                                         pad_shape=(size, size), batch_input_shape=(size, size)))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[10.0, 12.0, 30.0, 28.0], [60.0, 50.0, 70.0, 66.0]]), labels=torch.tensor([1, 3])
    )
    data = dict(inputs=[torch.randint(0, 256, (3, size, size), dtype=torch.uint8)], data_samples=[sample])
    before = {n: p.detach().clone() for n, p in model.neck.named_parameters()}
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    logs = model.train_step(data, wrapper)
    assert torch.isfinite(logs["loss"])
    changed = [n for n, p in model.neck.named_parameters() if not torch.equal(before[n], p)]
    assert any(n.startswith("hfps.") for n in changed) and any(n.startswith("sdps.") for n in changed)


@pytest.mark.slow
def test_cascade_rcnn_with_hsfpn_trains_one_step():
    from pipelines.table5 import cascade_rcnn_r50

    cfg = cascade_rcnn_r50(dict(type="HSFPN", in_channels=[64, 128, 256, 512], out_channels=256, num_outs=5),
                           depth=18)
    _train_step(cfg)


@pytest.mark.slow
def test_retinanet_p2_p6_with_hsfpn_trains_one_step():
    cfg = dict(
        type="RetinaNet",
        data_preprocessor=dict(type="DetDataPreprocessor", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                               bgr_to_rgb=True, pad_size_divisor=32),
        backbone=dict(type="ResNet", depth=18, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
                      norm_cfg=dict(type="BN", requires_grad=True), norm_eval=True, style="pytorch", init_cfg=None),
        neck=dict(type="HSFPN", in_channels=[64, 128, 256, 512], out_channels=64, start_level=0,
                  add_extra_convs="on_input", num_outs=5),
        bbox_head=dict(
            type="RetinaHead", num_classes=8, in_channels=64, stacked_convs=1, feat_channels=64,
            anchor_generator=dict(type="AnchorGenerator", octave_base_scale=2, scales_per_octave=3,
                                  ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64]),
            bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
            loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        ),
        train_cfg=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                                     ignore_iof_thr=-1),
                       sampler=dict(type="PseudoSampler"), allowed_border=-1, pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type="nms", iou_threshold=0.5),
                      max_per_img=100),
    )
    _train_step(cfg)


def test_package_attributes_load_lazily():
    import importlib.metadata

    from hsfpn.metric import AITODMetric

    assert hsfpn.HSFPN is HSFPN and hsfpn.AITODMetric is AITODMetric
    assert hsfpn.__version__ == importlib.metadata.version("hsfpn-toolkit")
    with pytest.raises(AttributeError, match="no attribute 'FPN'"):
        hsfpn.FPN  # noqa: B018
