"""NWDOverlaps (IoU-calculator style) and the NWD ranking assigner on anchor sets a reader can follow."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData

from hsfpn.assigners import NWDOverlaps, RankingAssigner, normalized_wasserstein


def row_anchors(*centres_x: float, size: float = 8.0) -> torch.Tensor:
    """size x size anchors on the row y in [0, size], centred at the given x."""
    return torch.tensor([[x - size / 2, 0.0, x + size / 2, size] for x in centres_x])


def gts(*centres_x: float, size: float = 8.0, labels=None) -> InstanceData:
    bboxes = row_anchors(*centres_x, size=size)
    labels = torch.arange(len(centres_x)) + 5 if labels is None else torch.tensor(labels)
    return InstanceData(bboxes=bboxes, labels=labels)


def nwd_of(distance: float) -> float:
    return math.exp(-distance / 12.8)


# ---- the calculator ----


def test_calculator_builds_from_registry_and_matches_function():
    calc = TASK_UTILS.build(dict(type="NWDOverlaps", constant=6.4))
    a = row_anchors(0, 4, 30)
    b = row_anchors(2, 100)
    out = calc(a, b)
    assert out.shape == (3, 2)
    assert torch.allclose(out, normalized_wasserstein(a, b, constant=6.4))
    assert out[0, 0].item() == pytest.approx(math.exp(-2 / 6.4))


def test_calculator_aligned_and_score_column():
    calc = NWDOverlaps()
    a = torch.tensor([[0.0, 0, 8, 8, 0.9], [0, 0, 4, 4, 0.1]])  # (x1, y1, x2, y2, score)
    b = torch.tensor([[0.0, 0, 8, 8], [3, 4, 7, 8]])
    assert calc(a, b, is_aligned=True).tolist() == pytest.approx([1.0, nwd_of(5.0)])


def test_calculator_falls_back_to_iou_modes():
    calc = NWDOverlaps()
    a = torch.tensor([[0.0, 0, 10, 10]])
    b = torch.tensor([[5.0, 0, 15, 10]])
    assert calc(a, b, mode="iou").item() == pytest.approx(50 / 150)
    assert calc(a, b, mode="iof").item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="mode"):
        calc(a, b, mode="dotd")  # only NWD and mmdet's IoU family are offered


def test_calculator_fp16_output_and_inputs():
    a = row_anchors(0, 500)
    b = row_anchors(1000, 3)
    ref = NWDOverlaps()(a, b)
    half = NWDOverlaps(dtype="fp16")(a.half(), b.half())
    assert half.dtype == torch.float16
    assert torch.isfinite(half).all()
    assert torch.allclose(half.float(), ref, atol=1e-3)


def test_calculator_chunks_give_the_same_matrix():
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(7, 2, generator=gen) * 50
    a = torch.cat([xy, xy + 4 + torch.rand(7, 2, generator=gen) * 10], 1)
    b = a.flip(0) + 1
    assert torch.equal(NWDOverlaps(max_elements=3)(a, b), NWDOverlaps()(a, b))


def test_calculator_rejects_bad_arguments():
    # C must be positive; dtype is None or 'fp16' like mmdet's BboxOverlaps2D.
    with pytest.raises(ValueError, match="constant"):
        NWDOverlaps(constant=-1)
    with pytest.raises(ValueError, match="dtype"):
        NWDOverlaps(dtype="bf16")


def test_max_iou_assigner_accepts_nwd_calculator():
    # The R-CNN variant: mmdet's MaxIoUAssigner thresholds NWD instead of IoU.
    assigner = TASK_UTILS.build(
        dict(
            type="MaxIoUAssigner",
            pos_iou_thr=0.5,
            neg_iou_thr=0.5,
            min_pos_iou=0.5,
            match_low_quality=False,
            iou_calculator=dict(type="NWDOverlaps"),
        )
    )
    # Anchor 0 is 2 px from the object (NWD 0.855 -> positive), anchor 1 is 34 px away (0.070 -> negative).
    # A 4 x 4 anchor 3 px from a 4 x 4 object: IoU 4 / 28 = 0.14 (negative under IoU), but
    # NWD exp(-3 / 12.8) = 0.79 -> positive.
    result = assigner.assign(InstanceData(priors=row_anchors(4, 40)), gts(6))
    assert result.gt_inds.tolist() == [1, 0]
    small = assigner.assign(InstanceData(priors=row_anchors(5, size=4)), gts(8, size=4))
    assert small.gt_inds.tolist() == [1]
    assert small.max_overlaps.item() == pytest.approx(nwd_of(3.0))


# ---- the ranking assigner, by hand ----


def test_one_object_takes_its_three_nearest_anchors():
    # Object centred at x = 6; anchor centres 4, 8, 12, 16, 44 -> distances 2, 2, 6, 10, 38 px.
    # NWD = exp(-d / 12.8): 0.855, 0.855, 0.626, 0.458, 0.051. Top-3 -> anchors 0, 1, 2 positive;
    # anchor 3 (0.458 >= 0.3) is ignored; anchor 4 (0.051 < 0.3) is negative.
    result = RankingAssigner(topk=3).assign(InstanceData(priors=row_anchors(4, 8, 12, 16, 44)), gts(6))
    assert result.gt_inds.tolist() == [1, 1, 1, -1, 0]
    assert result.labels.tolist() == [5, 5, 5, -1, -1]
    assert result.max_overlaps.tolist() == pytest.approx([nwd_of(d) for d in (2, 2, 6, 10, 38)], rel=1e-5)
    assert result.num_gts == 1


def test_shared_anchor_goes_to_the_closer_object_then_the_lower_index():
    # Objects at x = 6 (gt 0) and x = 10 (gt 1); anchors at 4, 8, 12, 16, 44; top-2 each.
    # gt 0: anchors 0 and 1 (2 px each). gt 1: anchors 1 and 2 (2 px each). Anchor 1 is claimed by both
    # at the same NWD -> the lower index, gt 0. gt 1 keeps anchor 2 only. Anchor 3: best NWD 0.626
    # (gt 1, 6 px) -> ignored; anchor 4: 34 px from gt 1 -> negative.
    priors = InstanceData(priors=row_anchors(4, 8, 12, 16, 44))
    result = RankingAssigner(topk=2).assign(priors, gts(6, 10))
    assert result.gt_inds.tolist() == [1, 1, 2, -1, 0]
    # Move gt 1 to x = 9: now anchor 1 is 1 px from it (closer than gt 0's 2 px) and goes to gt 1.
    result = RankingAssigner(topk=2).assign(priors, gts(6, 9))
    assert result.gt_inds.tolist() == [1, 2, 2, -1, 0]


def test_min_pos_sim_and_neg_thr():
    priors = InstanceData(priors=row_anchors(4, 8, 12, 16, 44))
    # min_pos_sim 0.7: of the top-3 (0.855, 0.855, 0.626) only two qualify; the third stays ignored.
    result = RankingAssigner(topk=3, min_pos_sim=0.7).assign(priors, gts(6))
    assert result.gt_inds.tolist() == [1, 1, -1, -1, 0]
    # neg_thr 0.5: anchor 3 (0.458) becomes negative.
    result = RankingAssigner(topk=3, neg_thr=0.5).assign(priors, gts(6))
    assert result.gt_inds.tolist() == [1, 1, 1, 0, 0]


def test_far_object_still_gets_k_anchors():
    # A tiny object 30 px from every anchor: IoU is 0 everywhere, NWD still ranks the anchors.
    result = RankingAssigner(topk=1).assign(InstanceData(priors=row_anchors(0, 100)), gts(30, size=2))
    assert result.gt_inds.tolist() == [1, 0]


def test_no_objects_or_no_anchors():
    empty_gt = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    result = RankingAssigner().assign(InstanceData(priors=row_anchors(0, 8)), empty_gt)
    assert result.gt_inds.tolist() == [0, 0]
    assert result.labels.tolist() == [-1, -1]
    result = RankingAssigner().assign(InstanceData(priors=torch.zeros(0, 4)), gts(6))
    assert result.gt_inds.numel() == 0


def test_ignore_regions():
    # An ignore box over most of anchor 0 (IoF 0.875 > 0.5): it is neither positive nor negative, and the
    # object's top-2 moves on to anchors 1 and 2.
    priors = InstanceData(priors=row_anchors(4, 8, 12, 44))
    ignore = InstanceData(bboxes=torch.tensor([[-1.0, -1, 7, 9]]))  # IoF: anchor 0 0.875, anchor 1 0.375
    result = RankingAssigner(topk=2, ignore_iof_thr=0.5).assign(priors, gts(6), ignore)
    assert result.gt_inds.tolist() == [-1, 1, 1, 0]
    assert result.max_overlaps[0].item() == -1.0


def test_invalid_arguments():
    # k is a count of positives; the chunk budget is a count of entries.
    with pytest.raises(ValueError, match="topk"):
        RankingAssigner(topk=0)
    with pytest.raises(ValueError, match="max_elements"):
        RankingAssigner(max_elements=0)


# ---- against a loop, and chunked against unchunked ----


def loop_ranking(priors, gt_boxes, k, neg_thr, constant=12.8):
    """Plain-Python reference of the documented rules."""
    sim = normalized_wasserstein(gt_boxes, priors, constant).tolist()
    num_gts, num_priors = len(sim), len(sim[0])
    gt_inds = []
    for j in range(num_priors):
        best = max(sim[i][j] for i in range(num_gts))
        gt_inds.append(0 if best < neg_thr else -1)
    claims: dict[int, tuple[float, int]] = {}
    for i in range(num_gts):
        order = sorted(range(num_priors), key=lambda j: (-sim[i][j], j))[:k]
        for j in order:
            # best similarity wins; on a tie the lower gt index (seen first) keeps it
            if j not in claims or sim[i][j] > claims[j][0]:
                claims[j] = (sim[i][j], i)
    for j, (_, i) in claims.items():
        gt_inds[j] = i + 1
    return gt_inds


grid_st = st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(1, 4)), min_size=1, max_size=6)


@settings(max_examples=50, deadline=None)
@given(objects=grid_st, k=st.integers(1, 4), budget=st.integers(1, 60), seed=st.integers(0, 1000))
def test_vectorised_equals_loop_and_chunking_is_invisible(objects, k, budget, seed):
    # Anchors on a 4 px grid with 3 sizes; objects on an integer grid: many exact NWD ties.
    gen = torch.Generator().manual_seed(seed)
    centres = torch.stack(torch.meshgrid(torch.arange(0, 40, 4.0), torch.arange(0, 24, 4.0), indexing="xy"), -1)
    centres = centres.reshape(-1, 2)
    sides = torch.tensor([4.0, 8.0, 12.0])
    half = sides.repeat(len(centres))[:, None] / 2
    c = centres.repeat_interleave(3, 0)
    priors = torch.cat([c - half, c + half], 1)
    priors = priors[torch.randperm(len(priors), generator=gen)]
    gt_boxes = torch.tensor([[x * 3.0, y * 2.0, x * 3.0 + 2 * s, y * 2.0 + 2 * s] for x, y, s in objects])
    gt = InstanceData(bboxes=gt_boxes, labels=torch.zeros(len(objects), dtype=torch.long))
    pred = InstanceData(priors=priors)
    whole = RankingAssigner(topk=k).assign(pred, gt)
    chunked = RankingAssigner(topk=k, max_elements=budget).assign(pred, gt)
    assert torch.equal(whole.gt_inds, chunked.gt_inds)
    assert torch.equal(whole.max_overlaps, chunked.max_overlaps)
    assert whole.gt_inds.tolist() == loop_ranking(priors, gt_boxes, k, 0.3)
