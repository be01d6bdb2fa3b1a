"""NWD label assignment for MMDetection 3: an IoU-calculator-style NWD and the ranking assigner (NWD-RKA).

Xu et al. 2022, "Detecting tiny objects in aerial images: A normalized Gaussian Wasserstein distance and a
new benchmark" (ISPRS J. P&RS 190), https://doi.org/10.1016/j.isprsjprs.2022.06.002.

Where NWD is used, and why:

* **RPN label assignment** (:class:`RankingAssigner` with :class:`NWDOverlaps`, top-k = 3). This is the
  one place the authors' released AI-TOD configs (Faster R-CNN, Cascade R-CNN, DetectoRS) use NWD. An
  8 px object barely overlaps any anchor, so IoU thresholds leave most tiny objects with no positive
  anchor; NWD stays informative without overlap, changes smoothly with a few pixels of offset, and
  ranking (each object takes its k best anchors) gives every object, whatever its size, the same number
  of positives.
* **R-CNN stages keep IoU** (mmdet's ``MaxIoUAssigner`` with its default ``BboxOverlaps2D``) in those
  released configs. The reason: the anchor-sampling problem NWD solves is the RPN's, where fixed anchors
  meet objects of a few pixels; the R-CNN stages see up to 3,000 proposals already regressed onto the
  objects, so their IoU thresholds (0.5 / 0.6 / 0.7) still find positives for tiny objects, and they keep
  the IoU quality ordering that the cascade and the IoU-based AP are built on. The earlier NWD variant
  that matches R-CNN proposals by NWD too (``MaxIoUAssigner`` with ``iou_calculator=dict(type=
  'NWDOverlaps')``, same thresholds) is supported and available through
  :func:`hsfpn.assigners.presets.label_assignment_overrides` with ``rcnn_metric='nwd'``; it is not the
  default because the authors' final configs do not use it.

Notes:
    Compared with the authors' mmdet 2 ``RankingAssigner``: a prior in the top-k of several ground truths
    goes to the one with the highest NWD (theirs: the last ground truth in the loop), exactly k priors
    are taken per ground truth even when NWD values tie (theirs: every prior equal to a top-k value), and
    the work is chunked over priors so 3,000 objects x 200,000 anchors never builds the full matrix.
"""

from __future__ import annotations

import torch
from mmdet.models.task_modules.assigners import AssignResult, BaseAssigner
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
from mmengine.structures import InstanceData
from torch import Tensor

from .gaussian import AITOD_NWD_CONSTANT, normalized_wasserstein
from .ranking import (
    DEFAULT_MAX_ELEMENTS,
    chunk_length,
    ignored_priors,
    resolve_candidates,
    scan_similarity,
    topk_candidates,
)

_IOU_MODES = ("iou", "iof", "giou")


@TASK_UTILS.register_module()
class NWDOverlaps:
    """NWD between two box sets, callable like mmdet's ``BboxOverlaps2D``.

    ``calc(bboxes1, bboxes2)`` returns the NWD matrix; ``mode='iou' | 'iof' | 'giou'`` falls back to mmdet's
    ``bbox_overlaps`` so assigners that ask for IoF against ignore regions keep working.

    Args:
        constant (float): NWD constant ``C`` in pixels. Defaults to 12.8, the mean absolute object size
            of AI-TOD used in the NWD paper.
        dtype (str | None): ``'fp16'`` returns the matrix in half precision to halve its memory (it is
            always computed in float32 first, so nothing overflows); None keeps float32. Defaults to None.
        max_elements (int): Entries per computation chunk, bounding the temporaries. Defaults to 2**24.

    Example:
        >>> calc = NWDOverlaps()
        >>> calc(torch.tensor([[0.0, 0.0, 8.0, 8.0]]), torch.tensor([[0.0, 0.0, 8.0, 8.0]])).item()
        1.0
    """

    def __init__(
        self, constant: float = AITOD_NWD_CONSTANT, dtype: str | None = None, max_elements: int = DEFAULT_MAX_ELEMENTS
    ) -> None:
        if not constant > 0:
            raise ValueError(f"constant must be positive, got {constant}")
        if dtype not in (None, "fp16"):
            raise ValueError(f"dtype must be None or 'fp16', got {dtype!r}")
        self.constant = float(constant)
        self.dtype = dtype
        self.max_elements = int(max_elements)

    def __call__(self, bboxes1: Tensor, bboxes2: Tensor, mode: str = "nwd", is_aligned: bool = False) -> Tensor:
        """Similarity between ``bboxes1`` (m, 4|5) and ``bboxes2`` (n, 4|5).

        Args:
            bboxes1 (Tensor): Boxes ``(x1, y1, x2, y2[, score])``, shape ``(m, 4)`` or ``(m, 5)``.
            bboxes2 (Tensor): Boxes, shape ``(n, 4)`` or ``(n, 5)``; ``n == m`` when aligned.
            mode (str): ``'nwd'`` (default) or one of mmdet's ``'iou'``, ``'iof'``, ``'giou'``.
            is_aligned (bool): Pairwise by index instead of all pairs. Defaults to False.

        Returns:
            Tensor: Shape ``(m, n)``, or ``(m,)`` when aligned; float32 (half with ``dtype='fp16'``).
        """
        bboxes1 = get_box_tensor(bboxes1)[..., :4]
        bboxes2 = get_box_tensor(bboxes2)[..., :4]
        if mode in _IOU_MODES:
            return bbox_overlaps(bboxes1.float(), bboxes2.float(), mode, is_aligned)
        if mode != "nwd":
            raise ValueError(f"mode must be 'nwd', 'iou', 'iof' or 'giou', got {mode!r}")
        out_dtype = torch.float16 if self.dtype == "fp16" else torch.float32
        if is_aligned:
            return normalized_wasserstein(bboxes1, bboxes2, self.constant, is_aligned=True).to(out_dtype)
        rows, cols = bboxes1.shape[0], bboxes2.shape[0]
        step = chunk_length(rows, self.max_elements)
        if cols <= step:  # one chunk: no copy into a preallocated output
            return normalized_wasserstein(bboxes1, bboxes2, self.constant).to(out_dtype)
        out = bboxes1.new_empty((rows, cols), dtype=out_dtype)
        for start in range(0, cols, step):
            out[:, start : start + step] = normalized_wasserstein(bboxes1, bboxes2[start : start + step], self.constant)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(constant={self.constant}, dtype={self.dtype})"


def empty_assign_result(num_gts: int, num_priors: int, device: torch.device) -> AssignResult:
    """The mmdet result for no ground truth (everything negative) or no prior (nothing to assign)."""
    gt_inds = torch.full((num_priors,), 0 if num_gts == 0 else -1, dtype=torch.long, device=device)
    return AssignResult(
        num_gts=num_gts,
        gt_inds=gt_inds,
        max_overlaps=torch.zeros(num_priors, device=device),
        labels=torch.full((num_priors,), -1, dtype=torch.long, device=device),
    )


def labels_for(gt_inds: Tensor, gt_labels: Tensor) -> Tensor:
    """mmdet's per-prior labels: the assigned ground truth's label for positives, -1 elsewhere."""
    labels = torch.full_like(gt_inds, -1)
    pos = gt_inds > 0
    labels[pos] = gt_labels[gt_inds[pos] - 1].long()
    return labels


def rank_priors(
    iou_calculator,
    gt_boxes: Tensor,
    priors: Tensor,
    topk: int,
    *,
    neg_thr: float,
    min_pos_sim: float,
    ignored: Tensor | None,
    max_elements: int,
) -> tuple[Tensor, Tensor]:
    """One ranking pass, shared by ``RankingAssigner`` and the first stage of RFLA's ``HieAssigner``.

    Returns:
        ``(gt_inds, max_overlaps)``, both ``(N,)``: ignored priors get ``-1`` in both; priors whose best
        similarity is below ``neg_thr`` are negative (0); each ground truth's top-``topk`` priors with
        similarity at least ``min_pos_sim`` are positive (``i + 1``), a prior claimed twice going to its most
        similar ground truth; the rest stay ``-1``.
    """
    scan = scan_similarity(iou_calculator, gt_boxes, priors, topk, excluded=ignored, max_elements=max_elements)
    max_overlaps = scan.prior_max
    if ignored is not None:
        max_overlaps[ignored] = -1.0  # mmdet's convention: ignored priors are neither neg nor pos
    gt_inds = torch.full((priors.shape[0],), -1, dtype=torch.long, device=priors.device)
    gt_inds[(max_overlaps >= 0) & (max_overlaps < neg_thr)] = 0
    pos_prior, pos_gt = resolve_candidates(*topk_candidates(scan, min_pos_sim))
    gt_inds[pos_prior] = pos_gt + 1
    return gt_inds, max_overlaps


@TASK_UTILS.register_module()
class RankingAssigner(BaseAssigner):
    """Give each ground truth its top-k priors by a similarity (NWD by default): NWD-RKA.

    Each prior ends up with mmdet's codes in ``AssignResult.gt_inds``: ``-1`` ignored, ``0`` negative,
    ``i + 1`` positive for ground truth ``i``. The steps, in order:

    1. every prior starts ignored (-1);
    2. priors whose best similarity to any ground truth is in ``[0, neg_thr)`` become negative (0);
    3. each ground truth's k most similar priors (ties: lower prior index) become positive, if their
       similarity is >= ``min_pos_sim``; a prior claimed by several ground truths goes to the most
       similar one (ties: lower ground-truth index);
    4. priors overlapping an ignore region by IoF > ``ignore_iof_thr`` are never negative or positive.

    Args:
        topk (int): Positives per ground truth. Defaults to 3 (the authors' Cascade R-CNN and DetectoRS
            AI-TOD configs; their Faster R-CNN config uses 2).
        neg_thr (float): Priors whose best similarity is below this are negatives; those between it and a
            top-k slot are ignored. Defaults to 0.3, the authors' value for NWD.
        min_pos_sim (float): A top-k prior must reach this similarity to be positive. Defaults to 0.0.
        ignore_iof_thr (float): IoF with ``gt_instances_ignore`` above which a prior is ignored; <= 0
            disables it. Defaults to -1.
        ignore_wrt_candidates (bool): IoF over the prior's area (True) or the ignore box's. Defaults to True.
        iou_calculator (dict): Config of the similarity, called as ``calc(gt_boxes, priors)``. Defaults to
            ``dict(type='NWDOverlaps')`` (C = 12.8).
        max_elements (int): Entry budget of one ground-truth x prior chunk; peak memory is a few such
            float32 buffers. Defaults to 2**24 (64 MiB each).

    Example:
        >>> from mmengine.structures import InstanceData
        >>> assigner = RankingAssigner(topk=1)
        >>> pred = InstanceData(priors=torch.tensor([[0.0, 0, 8, 8], [40, 40, 48, 48]]))
        >>> gt = InstanceData(bboxes=torch.tensor([[1.0, 1, 9, 9]]), labels=torch.tensor([2]))
        >>> assigner.assign(pred, gt).gt_inds.tolist()
        [1, 0]
    """

    def __init__(
        self,
        topk: int = 3,
        neg_thr: float = 0.3,
        min_pos_sim: float = 0.0,
        ignore_iof_thr: float = -1.0,
        ignore_wrt_candidates: bool = True,
        iou_calculator: dict | None = None,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
    ) -> None:
        if int(topk) < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        if max_elements < 1:
            raise ValueError(f"max_elements must be >= 1, got {max_elements}")
        self.topk = int(topk)
        self.neg_thr = float(neg_thr)
        self.min_pos_sim = float(min_pos_sim)
        self.ignore_iof_thr = float(ignore_iof_thr)
        self.ignore_wrt_candidates = bool(ignore_wrt_candidates)
        self.iou_calculator = TASK_UTILS.build(dict(iou_calculator or dict(type="NWDOverlaps")))
        self.max_elements = int(max_elements)

    def assign(
        self,
        pred_instances: InstanceData,
        gt_instances: InstanceData,
        gt_instances_ignore: InstanceData | None = None,
        **kwargs,
    ) -> AssignResult:
        """Assign ground truths to ``pred_instances.priors``.

        Args:
            pred_instances (InstanceData): ``priors`` (anchors or proposals), shape ``(N, 4)``.
            gt_instances (InstanceData): ``bboxes`` ``(G, 4)`` and ``labels`` ``(G,)``.
            gt_instances_ignore (InstanceData | None): ``bboxes`` of ignore regions. Defaults to None.

        Returns:
            AssignResult: ``gt_inds`` ``(N,)``, ``max_overlaps`` ``(N,)`` (best similarity, -1 for ignored
            regions) and ``labels`` ``(N,)``.
        """
        priors = get_box_tensor(pred_instances.priors)[..., :4]
        gt_boxes = get_box_tensor(gt_instances.bboxes)[..., :4]
        gt_labels = gt_instances.labels
        num_gts, num_priors = gt_boxes.shape[0], priors.shape[0]
        if num_gts == 0 or num_priors == 0:
            return empty_assign_result(num_gts, num_priors, priors.device)
        ignore_boxes = None if gt_instances_ignore is None else get_box_tensor(gt_instances_ignore.bboxes)
        ignored = ignored_priors(
            priors, ignore_boxes, self.ignore_iof_thr, self.ignore_wrt_candidates, self.max_elements
        )
        gt_inds, max_overlaps = rank_priors(
            self.iou_calculator, gt_boxes, priors, self.topk, neg_thr=self.neg_thr, min_pos_sim=self.min_pos_sim,
            ignored=ignored, max_elements=self.max_elements,
        )
        return AssignResult(
            num_gts=num_gts, gt_inds=gt_inds, max_overlaps=max_overlaps, labels=labels_for(gt_inds, gt_labels)
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(topk={self.topk}, neg_thr={self.neg_thr}, min_pos_sim={self.min_pos_sim}, "
            f"iou_calculator={self.iou_calculator!r})"
        )
