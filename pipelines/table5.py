"""Table 5 of the paper: parameters and FLOPs of Cascade R-CNN R50 with each HS-FPN component.

The detector is the authors' AI-TOD Cascade R-CNN (ResNet-50 with frozen stem and layer1, ``norm_eval``,
8 classes, anchors of scale 2 with ratios 0.33 / 0.5 / 1 / 2 / 3, three R-CNN stages), built from
MMDetection's modules with a model dict written here, no weights loaded. For each neck variant the report
gives the trainable parameters and the FLOPs of one 800 x 800 forward beside the paper's figures.

What is counted (see :mod:`hsfpn.complexity`): conv and linear multiply-accumulates, as MMCV's hook counter
reports them, over backbone, neck, RPN head (its convs on all five levels) and the three R-CNN stages run on
a fixed set of 1,000 proposals (MMDetection 2's ``forward_dummy``, which such counters call, uses 1,000
proposals; the paper's numbers fit that). RPN post-processing, RoIAlign, normalisation and activations are
not counted. ``flops_full_G`` adds the DCT products and the SDP attention matmuls that the hook counter
cannot see. The backbone and heads are counted once (with FPN) since their cost does not depend on the neck;
each variant's neck is counted on the same backbone features.
"""

from __future__ import annotations

import copy
import csv
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotamini10.io import atomic_write_text

from .errors import PipelineError

__all__ = ["PAPER_TABLE5", "COMPONENT_SWITCHES", "Table5Row", "cascade_rcnn_r50", "table5", "write_table5"]

#: The paper's Table 5: variant -> (FLOPs in G, parameters in M).
PAPER_TABLE5: dict[str, tuple[float, float]] = {
    "FPN": (162.34, 68.95),
    "only CP": (193.67, 71.34),
    "only SP": (193.69, 71.31),
    "only HFP": (193.69, 71.34),
    "only SDP": (169.32, 69.35),
    "HS-FPN (all)": (200.65, 71.73),
}

#: Variant -> HSFPN switches (None: MMDetection's FPN).
COMPONENT_SWITCHES: dict[str, dict[str, bool] | None] = {
    "FPN": None,
    "only CP": dict(channel_path=True, spatial_path=False, sdp=False),
    "only SP": dict(channel_path=False, spatial_path=True, sdp=False),
    "only HFP": dict(channel_path=True, spatial_path=True, sdp=False),
    "only SDP": dict(channel_path=False, spatial_path=False, sdp=True),
    "HS-FPN (all)": dict(channel_path=True, spatial_path=True, sdp=True),
}

COLUMNS = ("variant", "params_M", "paper_params_M", "flops_G", "paper_flops_G", "flops_full_G")


@dataclass(frozen=True)
class Table5Row:
    """One row of the report (FLOPs are MACs in units of 1e9, parameters in units of 1e6)."""

    variant: str
    params: int
    flops: int
    flops_full: int

    def as_dict(self) -> dict[str, Any]:
        """The report's columns, rounded as the paper prints them (two decimals)."""
        paper_flops, paper_params = PAPER_TABLE5[self.variant]
        return {
            "variant": self.variant,
            "params_M": round(self.params / 1e6, 2),
            "paper_params_M": paper_params,
            "flops_G": round(self.flops / 1e9, 2),
            "paper_flops_G": paper_flops,
            "flops_full_G": round(self.flops_full / 1e9, 2),
        }


def cascade_rcnn_r50(neck: dict[str, Any], num_classes: int = 8, depth: int = 50) -> dict[str, Any]:
    """Model dict of the authors' AI-TOD Cascade R-CNN with the given neck (no pretrained weights).

    Args:
        neck (dict): The neck config (``type='FPN'`` or ``type='HSFPN'`` ...).
        num_classes (int): Object classes. Defaults to 8 (AI-TOD).
        depth (int): ResNet depth. Defaults to 50.

    Returns:
        dict: A config for ``mmdet.registry.MODELS.build``.
    """

    def stage(stds: list[float]) -> dict[str, Any]:
        return dict(
            type="Shared2FCBBoxHead",
            in_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=num_classes,
            bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=stds),
            reg_class_agnostic=True,
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type="SmoothL1Loss", beta=1.0, loss_weight=1.0),
        )

    def rcnn_train(iou: float) -> dict[str, Any]:
        return dict(
            assigner=dict(type="MaxIoUAssigner", pos_iou_thr=iou, neg_iou_thr=iou, min_pos_iou=iou,
                          match_low_quality=False, ignore_iof_thr=-1),
            sampler=dict(type="RandomSampler", num=512, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
            mask_size=28,
            pos_weight=-1,
            debug=False,
        )

    return dict(
        type="CascadeRCNN",
        data_preprocessor=dict(type="DetDataPreprocessor", mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
        backbone=dict(type="ResNet", depth=depth, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
                      norm_cfg=dict(type="BN", requires_grad=True), norm_eval=True, style="pytorch", init_cfg=None),
        neck=copy.deepcopy(neck),
        rpn_head=dict(
            type="RPNHead",
            in_channels=256,
            feat_channels=256,
            anchor_generator=dict(type="AnchorGenerator", scales=[2], ratios=[0.33, 0.5, 1.0, 2.0, 3.0],
                                  strides=[4, 8, 16, 32, 64]),
            bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type="SmoothL1Loss", beta=1.0 / 9.0, loss_weight=1.0),
        ),
        roi_head=dict(
            type="CascadeRoIHead",
            num_stages=3,
            stage_loss_weights=[1, 0.5, 0.25],
            bbox_roi_extractor=dict(type="SingleRoIExtractor",
                                    roi_layer=dict(type="RoIAlign", output_size=7, sampling_ratio=0),
                                    out_channels=256, featmap_strides=[4, 8, 16, 32]),
            bbox_head=[stage([0.1, 0.1, 0.2, 0.2]), stage([0.05, 0.05, 0.1, 0.1]),
                       stage([0.033, 0.033, 0.067, 0.067])],
        ),
        train_cfg=dict(
            rpn=dict(
                assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                              match_low_quality=True, ignore_iof_thr=-1),
                sampler=dict(type="RandomSampler", num=256, pos_fraction=0.5, neg_pos_ub=-1,
                             add_gt_as_proposals=False),
                allowed_border=0,
                pos_weight=-1,
                debug=False,
            ),
            rpn_proposal=dict(nms_pre=3000, max_per_img=3000, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0),
            rcnn=[rcnn_train(0.5), rcnn_train(0.6), rcnn_train(0.7)],
        ),
        test_cfg=dict(
            rpn=dict(nms_pre=3000, max_per_img=3000, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0),
            rcnn=dict(score_thr=0.05, nms=dict(type="nms", iou_threshold=0.5), max_per_img=3000),
        ),
    )


def neck_config(variant: str, channel_fusion: str = "concat") -> dict[str, Any]:
    """The neck dict of one Table 5 variant (C2..C5 of ResNet-50 -> 256 channels, 5 outputs)."""
    if variant not in COMPONENT_SWITCHES:
        raise PipelineError(f"unknown Table 5 variant {variant!r}; known: {', '.join(COMPONENT_SWITCHES)}")
    base = dict(in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5)
    switches = COMPONENT_SWITCHES[variant]
    if switches is None:
        return dict(type="FPN", **base)
    return dict(type="HSFPN", **base, **switches, channel_fusion=channel_fusion)


def build_detector(model: dict[str, Any]):
    """``MODELS.build`` in MMDetection's scope (its data preprocessor is registered there), HSFPN registered."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import ConfigDict
    from mmengine.registry import DefaultScope

    import hsfpn  # noqa: F401  (registers HSFPN)

    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope("mmdet"):
        return MODELS.build(ConfigDict(model))  # detectors read train_cfg.rpn as attributes


def _fixed_proposals(num: int, size: int):
    import torch

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(num, 2, generator=g) * (size * 0.75)
    wh = 8.0 + torch.rand(num, 2, generator=g) * (size * 0.25 - 8.0)
    return torch.cat([xy, xy + wh], dim=1)


def table5(
    size: int = 800,
    proposals: int = 1000,
    channel_fusion: str = "concat",
    variants: list[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Table5Row]:
    """Build every Table 5 variant and count its trainable parameters and FLOPs.

    Args:
        size (int): Square input side. Defaults to 800 (the paper's).
        proposals (int): Fixed proposal count for the R-CNN stages. Defaults to 1000.
        channel_fusion (str): HFP channel-path fusion, ``'concat'`` (the form the paper's Table 5 counts:
            its parameters match to 0.01 M) or ``'sum'`` (the release: 2,048 fewer parameters per HFP).
            Defaults to ``'concat'``.
        variants (list[str], optional): Subset of :data:`COMPONENT_SWITCHES`. Defaults to all, in the paper's order.
        log (Callable[[str], None], optional): Progress callback. Defaults to none.

    Returns:
        list[Table5Row]: One row per variant.
    """
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from hsfpn.complexity import count_macs, count_parameters

    variants = list(COMPONENT_SWITCHES) if variants is None else variants
    unknown = [v for v in variants if v not in COMPONENT_SWITCHES]
    if unknown:
        raise PipelineError(f"unknown Table 5 variants: {', '.join(unknown)}; known: {', '.join(COMPONENT_SWITCHES)}")
    if size < 32 or proposals < 1:
        raise PipelineError(f"size must be >= 32 and proposals >= 1, got size={size}, proposals={proposals}")
    emit = log or (lambda _msg: None)

    torch.manual_seed(0)
    image = torch.randn(1, 3, size, size)
    sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0),
                                         pad_shape=(size, size), batch_input_shape=(size, size)))
    props = InstanceData(bboxes=_fixed_proposals(proposals, size))

    base = build_detector(cascade_rcnn_r50(neck_config("FPN"))).eval()
    with torch.no_grad():
        feats = base.backbone(image)
    fpn_neck = count_macs(base.neck, lambda: base.neck(feats))

    def whole() -> None:
        x = base.extract_feat(image)
        base.rpn_head(x)
        base.roi_head.forward(x, [props], [sample])

    total = count_macs(base, whole)
    others = total.conv_linear - fpn_neck.conv_linear  # backbone + RPN head + R-CNN stages
    emit(f"backbone and heads: {others / 1e9:.2f} GMAC at {size}x{size} with {proposals} proposals")

    rows = []
    for variant in variants:
        model = base if variant == "FPN" else build_detector(cascade_rcnn_r50(neck_config(variant, channel_fusion)))
        model.eval()
        neck = count_macs(model.neck, lambda: model.neck(feats))
        row = Table5Row(
            variant=variant,
            params=count_parameters(model),
            flops=others + neck.conv_linear,
            flops_full=others + neck.full,
        )
        emit(f"{variant}: {row.params:,} parameters, {row.flops / 1e9:.2f} GFLOPs")
        rows.append(row)
    return rows


def format_table5(rows: list[Table5Row], fmt: str = "md") -> str:
    """Render rows as a Markdown table (``'md'``) or CSV (``'csv'``)."""
    dicts = [r.as_dict() for r in rows]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(dicts)
        return buf.getvalue()
    if fmt != "md":
        raise PipelineError(f"unknown table format {fmt!r} (use md or csv)")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for d in dicts:
        lines.append("| " + " | ".join(f"{d[c]:.2f}" if isinstance(d[c], float) else str(d[c]) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def write_table5(rows: list[Table5Row], path: str | os.PathLike) -> Path:
    """Write the report atomically, CSV for a ``.csv`` suffix and Markdown for ``.md``.

    Args:
        rows (list[Table5Row]): Rows from :func:`table5`.
        path (str | os.PathLike): Output file.

    Returns:
        Path: The written file.
    """
    path = Path(path)
    fmt = {".csv": "csv", ".md": "md"}.get(path.suffix.lower())
    if fmt is None:
        raise PipelineError(f"{path}: output must end in .csv or .md")
    text = format_table5(rows, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path
