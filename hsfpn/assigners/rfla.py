"""RFLA for MMDetection 3: receptive-field priors, the receptive-field distance and the hierarchical assigner.

Xu et al. 2022, "RFLA: Gaussian Receptive Field based Label Assignment for Tiny Object Detection"
(ECCV 2022), https://arxiv.org/abs/2208.08738.

* :func:`resnet_receptive_fields` computes the theoretical receptive field (TRF) of each FPN level from the
  backbone's layers (ResNet-50: 35, 91, 267 and 427 px at P2..P5).
* :class:`RFGenerator` is an mmdet 3 prior generator (``TASK_UTILS``) that puts at every feature point a
  square prior whose side is ``fraction x TRF`` (fraction 0.5: the effective receptive field, ERF), centred on
  the point. Seen through :func:`~hsfpn.assigners.gaussian.box_gaussians` that square is the point's
  receptive-field Gaussian ``N(point, diag(r^2, r^2))`` with ERF radius ``r = fraction x TRF / 2``. Any
  anchor-based head (``RPNHead``) uses it in place of ``AnchorGenerator``; its boxes are the regression
  references.
* :class:`RFDOverlaps` is the receptive-field distance (RFD) as a similarity, ``1 / (1 + KL(N_rf || N_gt))``.
* :class:`HieAssigner` is the hierarchical label assigner (HLA): stage 1 gives each ground truth its
  ``topk[0] = 3`` priors of highest RFD similarity; stage 2 shrinks every prior's ERF radius by ``ratio =
  0.9`` and gives each ground truth that stage 1 left without a positive its ``topk[1] = 1`` best prior
  among the priors still free. The authors' configs use it in the RPN, on P2..P6.

Notes:
    Differences from the authors' mmdet 2 release, each deliberate: (1) the P6 field is computed from the
    layer that makes P6 (mmdet's FPN max-pools P5 with kernel 1, so 427 px; a stride-2 3x3 conv gives 491)
    where the release hard-codes 555; pass ``receptive_fields`` to use other values. (2) Stage 2 serves the
    ground truths with no stage-1 positive, as the paper motivates it; the release re-ranks every ground
    truth and keeps the new pick when it is not already positive, available here as
    ``stage2_scope='all'``. (3) Stage 2 only adds positives; negatives and ignores come from stage 1.
    (4) Conflicts and ties are resolved deterministically (see :mod:`hsfpn.assigners.ranking`).
    (5) ``RFGenerator`` defaults to one isotropic prior per point, the paper's receptive field; the
    release's generator makes three (ratios 0.5, 1, 2) when a config sets none, which is what the
    presets (:mod:`hsfpn.assigners.presets`) reproduce.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmdet.models.task_modules.assigners import AssignResult, BaseAssigner
from mmdet.models.task_modules.prior_generators import AnchorGenerator
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
from mmengine.structures import InstanceData
from torch import Tensor

from .gaussian import receptive_field_similarity, rescale_boxes
from .nwd import empty_assign_result, labels_for, rank_priors
from .ranking import (
    DEFAULT_MAX_ELEMENTS,
    chunk_length,
    ignored_priors,
    resolve_candidates,
    scan_similarity,
    topk_candidates,
)

# (block type, blocks per stage) of the ResNets mmdet builds.
_RESNET_STAGES: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
EXTRA_LEVEL_OPS = ("maxpool", "conv")
STAGE2_SCOPES = ("unmatched", "all")


def resnet_receptive_fields(
    depth: int = 50, levels: Sequence[int] = (2, 3, 4, 5, 6), extra_levels: str = "maxpool"
) -> tuple[int, ...]:
    """Theoretical receptive field (px) of a ResNet + FPN at the given pyramid levels.

    The field of a layer stack follows ``r <- r + (k - 1) * j`` and ``j <- j * s`` for each layer of kernel
    ``k`` and stride ``s`` (``j``: input pixels per output step), along the deepest path: the 7x7/2 stem
    conv, the 3x3/2 max-pool, then every 3x3 conv of every residual block (pytorch style: the stride sits
    on the block's 3x3 conv; 1x1 convs add nothing). Level ``P_l`` (l = 2..5) takes the field of ResNet
    stage ``C_l``; levels above 5 are made from the one below by ``extra_levels``.

    Args:
        depth (int): ResNet depth, one of 18, 34, 50, 101, 152. Defaults to 50.
        levels (Sequence[int]): Pyramid levels, each >= 2 (P2 has stride 4). Defaults to P2..P6.
        extra_levels (str): How levels above P5 are made: ``'maxpool'`` (mmdet FPN with
            ``add_extra_convs=False``: max-pool, kernel 1, stride 2; the field does not grow) or ``'conv'``
            (a 3x3 stride-2 conv). Defaults to ``'maxpool'``.

    Returns:
        tuple[int, ...]: One receptive field per requested level.

    Example:
        >>> resnet_receptive_fields(50, (2, 3, 4, 5, 6))
        (35, 91, 267, 427, 427)
        >>> resnet_receptive_fields(50, (6, 7), extra_levels="conv")
        (491, 619)
    """
    if depth not in _RESNET_STAGES:
        raise ValueError(f"depth must be one of {sorted(_RESNET_STAGES)}, got {depth}")
    if extra_levels not in EXTRA_LEVEL_OPS:
        raise ValueError(f"extra_levels must be one of {EXTRA_LEVEL_OPS}, got {extra_levels!r}")
    levels = tuple(int(level) for level in levels)
    if not levels or min(levels) < 2:
        raise ValueError(f"levels must be pyramid levels >= 2 (P2 = stride 4), got {levels}")
    block, counts = _RESNET_STAGES[depth]
    convs_per_block = 2 if block == "basic" else 1  # 3x3 convs on the path of one block
    field, jump = 1, 1
    layers: list[tuple[int, int]] = [(7, 2), (3, 2)]  # stem conv, max-pool
    per_level: dict[int, int] = {}
    for stage, num_blocks in enumerate(counts):
        for b in range(num_blocks):
            stride = 2 if (stage > 0 and b == 0) else 1
            layers += [(3, stride)] + [(3, 1)] * (convs_per_block - 1)
        for kernel, stride in layers:
            field += (kernel - 1) * jump
            jump *= stride
        layers = []
        per_level[stage + 2] = field
    extra_kernel = 1 if extra_levels == "maxpool" else 3
    for level in range(6, max(levels) + 1):
        field += (extra_kernel - 1) * jump
        jump *= 2
        per_level[level] = field
    return tuple(per_level[level] for level in levels)


@TASK_UTILS.register_module()
class RFGenerator(AnchorGenerator):
    """Receptive-field priors: a square of side ``fraction x TRF`` centred on every feature point.

    A drop-in replacement for ``AnchorGenerator`` in ``RPNHead`` (or any ``AnchorHead``): the priors are
    the ERF boxes, and their Gaussians are the receptive-field Gaussians RFLA assigns with. Feature point
    ``(x, y)`` of a level with stride ``s`` sits at image point ``(x * s, y * s)``, mmdet's anchor convention
    (and the authors').

    Args:
        strides (Sequence[int]): Stride of each level, highest resolution first, e.g. (4, 8, 16, 32, 64);
            each must be ``2 ** level``.
        fraction (float): ERF / TRF ratio, in (0, 1]. Defaults to 0.5 (the paper's setting).
        depth (int): ResNet depth the TRFs are computed for. Defaults to 50.
        receptive_fields (Sequence[float] | None): TRF per level in px, overriding the computation (e.g. the
            authors' release values (35, 91, 267, 427, 555)). Defaults to None.
        extra_levels (str): ``'maxpool'`` or ``'conv'``, see :func:`resnet_receptive_fields`. Defaults to
            ``'maxpool'``.
        ratios (Sequence[float]): Height / width ratios of the priors at each point; (1.0,) is the
            isotropic receptive field of the paper. The authors' release generates (0.5, 1.0, 2.0) when
            unset. Defaults to (1.0,).
        use_box_type (bool): Return mmdet ``HorizontalBoxes`` instead of tensors. Defaults to False.

    Example:
        >>> gen = RFGenerator(strides=(4, 8, 16, 32, 64))
        >>> gen.base_sizes
        [17.5, 45.5, 133.5, 213.5, 213.5]
        >>> gen.num_base_priors
        [1, 1, 1, 1, 1]
    """

    def __init__(
        self,
        strides: Sequence[int],
        fraction: float = 0.5,
        depth: int = 50,
        receptive_fields: Sequence[float] | None = None,
        extra_levels: str = "maxpool",
        ratios: Sequence[float] = (1.0,),
        use_box_type: bool = False,
    ) -> None:
        strides = [int(s) if not isinstance(s, (tuple, list)) else int(s[0]) for s in strides]
        if not strides:
            raise ValueError("strides must name at least one level")
        levels = []
        for stride in strides:
            level = stride.bit_length() - 1
            if stride < 4 or stride != 1 << level:
                raise ValueError(f"strides must be powers of two >= 4 (P2 = 4), got {strides}")
            levels.append(level)
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if receptive_fields is None:
            receptive_fields = resnet_receptive_fields(depth, levels, extra_levels)
        elif len(receptive_fields) != len(strides):
            raise ValueError(
                f"receptive_fields needs one value per level: {len(strides)} strides, "
                f"{len(receptive_fields)} receptive_fields"
            )
        if min(receptive_fields) <= 0:
            raise ValueError(f"receptive_fields must be positive, got {tuple(receptive_fields)}")
        self.fraction = float(fraction)
        self.levels = tuple(levels)
        self.receptive_fields = tuple(float(r) for r in receptive_fields)
        super().__init__(
            strides=strides,
            ratios=list(ratios),
            scales=[1.0],
            base_sizes=[self.fraction * r for r in self.receptive_fields],
            use_box_type=use_box_type,
        )

    @property
    def erf_radii(self) -> tuple[float, ...]:
        """Effective receptive field radius (px) per level: the std of the prior Gaussian."""
        return tuple(size / 2 for size in self.base_sizes)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(strides={[s[0] for s in self.strides]}, fraction={self.fraction}, "
            f"receptive_fields={self.receptive_fields}, ratios={self.ratios.tolist()})"
        )


@TASK_UTILS.register_module()
class RFDOverlaps:
    """RFLA's receptive-field distance as a similarity, callable like mmdet's ``BboxOverlaps2D``.

    ``calc(gt_boxes, prior_boxes)`` returns ``1 / (1 + KL(N_prior || N_gt))`` of shape ``(G, N)``:
    the second argument is the receptive field (first KL argument), the first the ground truth.
    ``mode='iou' | 'iof' | 'giou'`` falls back to mmdet's ``bbox_overlaps``.

    Args:
        max_elements (int): Entries per computation chunk. Defaults to 2**24.

    Example:
        >>> gt = torch.tensor([[2.0, 0.0, 6.0, 4.0]])  # sigma 2 about (4, 2)
        >>> RFDOverlaps()(gt, torch.tensor([[6.0, 0.0, 10.0, 4.0]])).item()  # 4 px: KL = 0.5 * (4 / 2)^2 = 2
        0.3333...
    """

    def __init__(self, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
        self.max_elements = int(max_elements)

    def __call__(self, bboxes1: Tensor, bboxes2: Tensor, mode: str = "rfd", is_aligned: bool = False) -> Tensor:
        """Similarity between ground truths ``bboxes1`` (m, 4|5) and priors ``bboxes2`` (n, 4|5).

        Returns:
            Tensor: Shape ``(m, n)`` (``(m,)`` when aligned), float32, in (0, 1].
        """
        bboxes1 = get_box_tensor(bboxes1)[..., :4]
        bboxes2 = get_box_tensor(bboxes2)[..., :4]
        if mode in ("iou", "iof", "giou"):
            return bbox_overlaps(bboxes1.float(), bboxes2.float(), mode, is_aligned)
        if mode != "rfd":
            raise ValueError(f"mode must be 'rfd', 'iou', 'iof' or 'giou', got {mode!r}")
        if is_aligned:
            return receptive_field_similarity(bboxes1, bboxes2, is_aligned=True).float()
        rows, cols = bboxes1.shape[0], bboxes2.shape[0]
        step = chunk_length(rows, self.max_elements)
        if cols <= step:  # one chunk: no copy into a preallocated output
            return receptive_field_similarity(bboxes1, bboxes2).float()
        out = bboxes1.new_empty((rows, cols), dtype=torch.float32)
        for start in range(0, cols, step):
            out[:, start : start + step] = receptive_field_similarity(bboxes1, bboxes2[start : start + step])
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@TASK_UTILS.register_module()
class HieAssigner(BaseAssigner):
    """Hierarchical label assignment (HLA) of RFLA on receptive-field priors.

    Each prior ends up with mmdet's codes in ``AssignResult.gt_inds``: ``-1`` ignored, ``0`` negative,
    ``i + 1`` positive for ground truth ``i``. The steps, in order:

    1. stage 1, on the priors as generated: priors whose best similarity is in ``[0, neg_thr)`` are
       negative, the rest ignored; each ground truth's ``topk[0]`` most similar priors become positive
       (>= ``min_pos_sim``; a prior claimed twice goes to the more similar ground truth);
    2. stage 2, on the priors shrunk about their centres by ``ratio`` (ERF radius x 0.9): each ground truth
       in scope takes its ``topk[1]`` most similar priors among those that are not yet positive. Scope
       ``'unmatched'``: ground truths with no stage-1 positive. Scope ``'all'`` (the authors' release):
       every ground truth ranks all priors and keeps the picks that are not already positive.
    3. priors overlapping an ignore region by IoF > ``ignore_iof_thr`` are never negative or positive.

    Args:
        topk (Sequence[int]): Positives per ground truth in stage 1 and stage 2. Defaults to (3, 1).
        ratio (float): Stage-2 scale of the ERF radius, in (0, 1]. Defaults to 0.9.
        neg_thr (float): Best-similarity threshold for negatives. Defaults to 0.8 (the release's value for
            the KL similarity: a prior within KL 0.25 of a ground truth is never a negative).
        min_pos_sim (float): Minimum similarity of a positive. Defaults to 0.0.
        stage2_scope (str): ``'unmatched'`` or ``'all'``, see above. Defaults to ``'unmatched'``.
        ignore_iof_thr (float): IoF with ``gt_instances_ignore`` above which a prior is ignored; <= 0
            disables it. Defaults to -1.
        ignore_wrt_candidates (bool): IoF over the prior's area (True) or the ignore box's. Defaults to True.
        iou_calculator (dict): Config of the similarity ``calc(gt_boxes, priors)``. Defaults to
            ``dict(type='RFDOverlaps')``.
        max_elements (int): Entry budget of one ground-truth x prior chunk. Defaults to 2**24.

    Example:
        >>> # 4 x 4 priors at x = 0, 4, 8, 12; objects at x = 4 and x = 5 both prefer prior 1: the first
        >>> # keeps it, stage 2 gives the second its best free prior (x = 8).
        >>> priors = torch.tensor([[x - 2.0, 0.0, x + 2.0, 4.0] for x in (0, 4, 8, 12)])
        >>> gts = InstanceData(bboxes=priors[1:2] + torch.tensor([[0.0, 0, 0, 0], [1, 0, 1, 0]]),
        ...                    labels=torch.tensor([0, 1]))
        >>> HieAssigner(topk=(1, 1)).assign(InstanceData(priors=priors), gts).gt_inds.tolist()
        [0, 1, 2, 0]
    """

    def __init__(
        self,
        topk: Sequence[int] = (3, 1),
        ratio: float = 0.9,
        neg_thr: float = 0.8,
        min_pos_sim: float = 0.0,
        stage2_scope: str = "unmatched",
        ignore_iof_thr: float = -1.0,
        ignore_wrt_candidates: bool = True,
        iou_calculator: dict | None = None,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
    ) -> None:
        topk = tuple(int(k) for k in topk)
        if len(topk) != 2 or topk[0] < 1 or topk[1] < 0:
            raise ValueError(f"topk must be (stage-1 k >= 1, stage-2 k >= 0), got {topk}")
        if not 0 < ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        if stage2_scope not in STAGE2_SCOPES:
            raise ValueError(f"stage2_scope must be one of {STAGE2_SCOPES}, got {stage2_scope!r}")
        if max_elements < 1:
            raise ValueError(f"max_elements must be >= 1, got {max_elements}")
        self.topk = topk
        self.ratio = float(ratio)
        self.neg_thr = float(neg_thr)
        self.min_pos_sim = float(min_pos_sim)
        self.stage2_scope = stage2_scope
        self.ignore_iof_thr = float(ignore_iof_thr)
        self.ignore_wrt_candidates = bool(ignore_wrt_candidates)
        self.iou_calculator = TASK_UTILS.build(dict(iou_calculator or dict(type="RFDOverlaps")))
        self.max_elements = int(max_elements)

    def assign(
        self,
        pred_instances: InstanceData,
        gt_instances: InstanceData,
        gt_instances_ignore: InstanceData | None = None,
        **kwargs,
    ) -> AssignResult:
        """Assign ground truths to the receptive-field priors ``pred_instances.priors``.

        Args:
            pred_instances (InstanceData): ``priors`` from :class:`RFGenerator`, shape ``(N, 4)``.
            gt_instances (InstanceData): ``bboxes`` ``(G, 4)`` and ``labels`` ``(G,)``.
            gt_instances_ignore (InstanceData | None): ``bboxes`` of ignore regions. Defaults to None.

        Returns:
            AssignResult: ``gt_inds`` ``(N,)``, ``max_overlaps`` ``(N,)`` (stage-1 best similarity, -1 for
            ignored regions) and ``labels`` ``(N,)``.
        """
        priors = get_box_tensor(pred_instances.priors)[..., :4]
        gt_boxes = get_box_tensor(gt_instances.bboxes)[..., :4]
        num_gts, num_priors = gt_boxes.shape[0], priors.shape[0]
        if num_gts == 0 or num_priors == 0:
            return empty_assign_result(num_gts, num_priors, priors.device)
        ignore_boxes = None if gt_instances_ignore is None else get_box_tensor(gt_instances_ignore.bboxes)
        ignored = ignored_priors(
            priors, ignore_boxes, self.ignore_iof_thr, self.ignore_wrt_candidates, self.max_elements
        )

        # Stage 1: negatives, ignores and the top-k1 positives on the priors as generated.
        gt_inds, max_overlaps = rank_priors(
            self.iou_calculator, gt_boxes, priors, self.topk[0], neg_thr=self.neg_thr,
            min_pos_sim=self.min_pos_sim, ignored=ignored, max_elements=self.max_elements,
        )

        # Stage 2: shrunken receptive fields, top-k2 among the priors not yet positive.
        if self.topk[1] > 0:
            self._stage2(gt_boxes, priors, gt_inds, ignored)
        return AssignResult(
            num_gts=num_gts,
            gt_inds=gt_inds,
            max_overlaps=max_overlaps,
            labels=labels_for(gt_inds, gt_instances.labels),
        )

    def _stage2(self, gt_boxes: Tensor, priors: Tensor, gt_inds: Tensor, ignored: Tensor | None) -> None:
        """Add stage-2 positives to ``gt_inds`` in place (see the class docstring)."""
        positive = gt_inds > 0
        if self.stage2_scope == "unmatched":
            has_pos = torch.zeros(gt_boxes.shape[0], dtype=torch.bool, device=gt_boxes.device)
            has_pos[gt_inds[positive] - 1] = True
            gt_ids = (~has_pos).nonzero(as_tuple=True)[0]
            excluded = positive if ignored is None else positive | ignored
        else:
            gt_ids = torch.arange(gt_boxes.shape[0], device=gt_boxes.device)
            excluded = ignored
        if gt_ids.numel() == 0:
            return
        if excluded is not None and bool(excluded.all()):
            return
        shrunk = rescale_boxes(priors, self.ratio)
        scan = scan_similarity(
            self.iou_calculator,
            gt_boxes[gt_ids],
            shrunk,
            self.topk[1],
            excluded=excluded,
            track_prior_max=False,
            max_elements=self.max_elements,
        )
        cand_gt, cand_prior, cand_val = topk_candidates(scan, self.min_pos_sim)
        free = ~positive[cand_prior]  # scope 'all' may pick a stage-1 positive: that prior stays as it was
        prior_idx, local_gt = resolve_candidates(cand_gt[free], cand_prior[free], cand_val[free])
        gt_inds[prior_idx] = gt_ids[local_gt] + 1

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(topk={self.topk}, ratio={self.ratio}, neg_thr={self.neg_thr}, "
            f"stage2_scope={self.stage2_scope!r}, iou_calculator={self.iou_calculator!r})"
        )
