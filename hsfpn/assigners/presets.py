"""Model-config overrides that switch a two-stage detector to NWD or RFLA label assignment.

The Table 3 rows "w/NWD" and "w/RFLA" of Faster R-CNN, Cascade R-CNN and DetectoRS are the plain configs
with these overrides applied (mmdet 3 model dicts, old-style ``type='...'`` strings; importing ``hsfpn``
registers the types). What changes, following the authors' released AI-TOD configs:

* ``'nwd'`` (NWD-RKA): the RPN assigner becomes ``RankingAssigner`` on ``NWDOverlaps`` (top-k 3,
  C = 12.8, negatives below NWD 0.3). The R-CNN stages keep their IoU ``MaxIoUAssigner`` (see
  :mod:`hsfpn.assigners.nwd` for why); ``rcnn_metric='nwd'`` swaps their IoU for NWD, thresholds unchanged.
* ``'rfla'``: the RPN's ``AnchorGenerator`` becomes ``RFGenerator`` (ResNet-50 receptive fields of P2..P6,
  fraction 0.5) and its assigner ``HieAssigner`` (top-k (3, 1), ratio 0.9). The R-CNN stages keep IoU.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from .gaussian import AITOD_NWD_CONSTANT

ASSIGNER_DETECTORS = ("faster_rcnn", "cascade_rcnn", "detectors")
METHODS = ("nwd", "rfla")
RCNN_METRICS = ("iou", "nwd")
#: R-CNN stages of each detector (DetectoRS in mmdet is a Cascade R-CNN with an RFP neck and SAC backbone).
RCNN_STAGES = {"faster_rcnn": 1, "cascade_rcnn": 3, "detectors": 3}
#: The FPN strides of the AI-TOD settings (P2..P6).
AITOD_STRIDES = (4, 8, 16, 32, 64)
#: Prior ratios the authors' RFGenerator produces when a config sets none (their AI-TOD configs).
RELEASE_RF_RATIOS = (0.5, 1.0, 2.0)


def label_assignment_overrides(
    detector: str,
    method: str,
    *,
    rcnn_metric: str = "iou",
    nwd_topk: int = 3,
    nwd_constant: float = AITOD_NWD_CONSTANT,
    rfla_topk: Sequence[int] = (3, 1),
    rfla_ratio: float = 0.9,
    rf_fraction: float = 0.5,
    rf_ratios: Sequence[float] = RELEASE_RF_RATIOS,
    backbone_depth: int = 50,
    strides: Sequence[int] = AITOD_STRIDES,
) -> dict[str, Any]:
    """The partial ``model`` dict that turns ``detector`` into its w/NWD or w/RFLA variant.

    Args:
        detector (str): ``'faster_rcnn'``, ``'cascade_rcnn'`` or ``'detectors'``.
        method (str): ``'nwd'`` or ``'rfla'``.
        rcnn_metric (str): ``'iou'`` keeps the R-CNN stages' IoU assigners (the authors' configs);
            ``'nwd'`` gives each stage's ``MaxIoUAssigner`` ``NWDOverlaps``. Defaults to ``'iou'``.
        nwd_topk (int): RPN positives per ground truth for NWD. Defaults to 3 (the authors' Cascade R-CNN
            and DetectoRS configs; their Faster R-CNN file uses 2).
        nwd_constant (float): NWD constant C (px). Defaults to 12.8.
        rfla_topk (Sequence[int]): HLA stage-1 and stage-2 top-k. Defaults to (3, 1).
        rfla_ratio (float): HLA stage-2 ERF radius factor. Defaults to 0.9.
        rf_fraction (float): ERF / TRF fraction of the priors. Defaults to 0.5.
        rf_ratios (Sequence[float]): Prior ratios per point. Defaults to (0.5, 1.0, 2.0), what the
            authors' generator produces in their configs; (1.0,) is the isotropic field of the paper.
        backbone_depth (int): ResNet depth for the receptive fields. Defaults to 50.
        strides (Sequence[int]): RPN strides, P2 first. Defaults to (4, 8, 16, 32, 64).

    Returns:
        dict: Keys mirror an mmdet 3 ``model`` dict; merge it into ``cfg.model`` recursively (mmengine's
        ``Config.merge_from_dict({'model': ...})`` for dict parts, or :func:`apply_label_assignment`):

        * ``'train_cfg'`` (always): ``{'rpn': {'assigner': A}}`` where ``A`` is a complete assigner dict
          with ``'_delete_': True`` (replace, do not merge into, the existing ``MaxIoUAssigner``).
          With ``rcnn_metric='nwd'`` it also has ``'rcnn'``: for Faster R-CNN a dict
          ``{'assigner': {'iou_calculator': {...}}}`` merged into the stage's assigner; for Cascade R-CNN and
          DetectoRS ``{'0': S, '1': S, '2': S}``, such dicts keyed by stage index, which mmengine's
          ``merge_from_dict`` (``allow_list_keys=True``, its default) merges into the list of stage dicts.
        * ``'rpn_head'`` (``'rfla'`` only): ``{'anchor_generator': G}`` with ``G`` a complete ``RFGenerator``
          dict with ``'_delete_': True``.

    Example:
        >>> o = label_assignment_overrides("cascade_rcnn", "nwd")
        >>> o["train_cfg"]["rpn"]["assigner"]["type"], o["train_cfg"]["rpn"]["assigner"]["topk"]
        ('RankingAssigner', 3)
        >>> sorted(label_assignment_overrides("faster_rcnn", "rfla"))
        ['rpn_head', 'train_cfg']
    """
    if detector not in ASSIGNER_DETECTORS:
        raise ValueError(f"detector must be one of {ASSIGNER_DETECTORS}, got {detector!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if rcnn_metric not in RCNN_METRICS:
        raise ValueError(f"rcnn_metric must be one of {RCNN_METRICS}, got {rcnn_metric!r}")
    nwd_calculator = dict(type="NWDOverlaps", constant=float(nwd_constant))
    overrides: dict[str, Any] = {}
    if method == "nwd":
        rpn_assigner = dict(
            _delete_=True, type="RankingAssigner", topk=int(nwd_topk), neg_thr=0.3, iou_calculator=nwd_calculator
        )
    else:
        rpn_assigner = dict(
            _delete_=True,
            type="HieAssigner",
            topk=tuple(int(k) for k in rfla_topk),
            ratio=float(rfla_ratio),
            neg_thr=0.8,
            iou_calculator=dict(type="RFDOverlaps"),
        )
        overrides["rpn_head"] = dict(
            anchor_generator=dict(
                _delete_=True,
                type="RFGenerator",
                strides=list(strides),
                fraction=float(rf_fraction),
                depth=int(backbone_depth),
                ratios=list(rf_ratios),
            )
        )
    train_cfg: dict[str, Any] = dict(rpn=dict(assigner=rpn_assigner))
    if rcnn_metric == "nwd":
        stage = dict(assigner=dict(iou_calculator=dict(nwd_calculator)))
        stages = RCNN_STAGES[detector]
        train_cfg["rcnn"] = stage if stages == 1 else {str(i): copy.deepcopy(stage) for i in range(stages)}
    overrides["train_cfg"] = train_cfg
    return overrides


def merge_overrides(base: Any, override: Any) -> Any:
    """Recursive merge with mmengine's rules (``Config.merge_from_dict`` with ``allow_list_keys=True``).

    Args:
        base (Any): The original value (dict, list or scalar); not modified.
        override (Any): The override. A dict with ``'_delete_': True`` replaces ``base`` (minus that key);
            a dict whose keys are all digit strings merged into a list merges into those list elements;
            another dict merges key by key into a dict base; anything else replaces ``base``.

    Returns:
        Any: A new merged value.

    Raises:
        ValueError: When an index key is past the end of the list it merges into.
    """
    if not isinstance(override, dict):
        return copy.deepcopy(override)
    override = dict(override)
    if override.pop("_delete_", False):
        return copy.deepcopy(override)
    if isinstance(base, list) and override and all(isinstance(k, str) and k.isdigit() for k in override):
        merged_list = copy.deepcopy(base)
        for key, value in override.items():
            if int(key) >= len(base):
                raise ValueError(f"override index {key} is past the end of a list of {len(base)}")
            merged_list[int(key)] = merge_overrides(base[int(key)], value)
        return merged_list
    if not isinstance(base, dict):
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = merge_overrides(base.get(key), value)
    return merged


def apply_label_assignment(model: dict[str, Any], detector: str, method: str, **kwargs: Any) -> dict[str, Any]:
    """A copy of the ``model`` dict with :func:`label_assignment_overrides` merged in.

    Args:
        model (dict): An mmdet 3 model dict with ``rpn_head`` and ``train_cfg`` (not modified).
        detector (str): See :func:`label_assignment_overrides`.
        method (str): See :func:`label_assignment_overrides`.
        **kwargs: Passed to :func:`label_assignment_overrides`.

    Returns:
        dict: The merged model dict.
    """
    for key in ("rpn_head", "train_cfg"):
        if key not in model:
            raise ValueError(f"model dict has no {key!r}: label assignment overrides need a two-stage detector")
    return merge_overrides(model, label_assignment_overrides(detector, method, **kwargs))
