"""RFLA: receptive fields, RF priors, the RFD similarity and the hierarchical assigner, by hand and by loop."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData

from hsfpn.assigners import HieAssigner, RFDOverlaps, RFGenerator, resnet_receptive_fields
from hsfpn.assigners.gaussian import receptive_field_similarity, rescale_boxes


def squares(*centres_x: float, side: float = 4.0) -> torch.Tensor:
    """side x side boxes on the row y in [0, side], centred at the given x."""
    return torch.tensor([[x - side / 2, 0.0, x + side / 2, side] for x in centres_x])


def gts(*centres_x: float, side: float = 4.0) -> InstanceData:
    return InstanceData(bboxes=squares(*centres_x, side=side), labels=torch.arange(len(centres_x)))


# ---- receptive fields and priors ----


def test_resnet50_theoretical_receptive_fields():
    # stem 7x7/2 -> 7, max-pool 3x3/2 -> 11 (jump 4); layer1: 3 blocks x 3x3 -> 11 + 3*2*4 = 35;
    # layer2: 35 + 2*4 = 43 (jump 8), + 3*2*8 = 91; layer3: 91 + 16 + 5*32 = 267; layer4: 267 + 32 + 2*64 = 427.
    assert resnet_receptive_fields(50) == (35, 91, 267, 427, 427)  # P6 = max-pool of P5, kernel 1
    assert resnet_receptive_fields(50, (6, 7), extra_levels="conv") == (491, 619)
    assert resnet_receptive_fields(101, (5,)) == (427 + 17 * 32,)  # 17 more 3x3 convs at jump 16
    # ResNet-18: two 3x3 convs per block: 11 + 4*2*4 = 43, 43 + 8 + 3*16 = 99, 99 + 16 + 3*32 = 211,
    # 211 + 32 + 3*64 = 435.
    assert resnet_receptive_fields(18, (2, 3, 4, 5)) == (43, 99, 211, 435)


def test_receptive_field_arguments_are_checked():
    # Only the ResNets mmdet builds; levels start at P2; extra levels by a closed set of ops.
    with pytest.raises(ValueError, match="depth"):
        resnet_receptive_fields(42)
    with pytest.raises(ValueError, match="levels"):
        resnet_receptive_fields(50, (1, 2))
    with pytest.raises(ValueError, match="extra_levels"):
        resnet_receptive_fields(50, extra_levels="avgpool")


def test_rf_generator_priors_are_erf_squares_on_the_points():
    gen = TASK_UTILS.build(dict(type="RFGenerator", strides=[4, 8, 16, 32, 64]))
    assert isinstance(gen, RFGenerator)
    assert gen.receptive_fields == (35, 91, 267, 427, 427)
    assert gen.base_sizes == [17.5, 45.5, 133.5, 213.5, 213.5]  # fraction 0.5 x TRF
    assert gen.erf_radii[0] == 8.75
    assert gen.num_base_priors == [1, 1, 1, 1, 1]
    priors = gen.grid_priors([(2, 3), (1, 1), (1, 1), (1, 1), (1, 1)], device="cpu")
    # P2, 2 rows x 3 columns, stride 4: centres (0,0), (4,0), (8,0), (0,4), (4,4), (8,4); side 17.5.
    centres = (priors[0][:, :2] + priors[0][:, 2:]) / 2
    assert centres.tolist() == [[0, 0], [4, 0], [8, 0], [0, 4], [4, 4], [8, 4]]
    assert torch.allclose(priors[0][:, 2:] - priors[0][:, :2], torch.full((6, 2), 17.5))
    assert gen.valid_flags([(2, 3)] * 5, (8, 8), device="cpu")[0].tolist() == [True, True, False] * 2


def test_rf_generator_options():
    gen = RFGenerator(strides=(8, 16), fraction=1.0, ratios=(0.5, 1.0, 2.0))
    assert gen.levels == (3, 4)
    assert gen.base_sizes == [91.0, 267.0]
    assert gen.num_base_priors == [3, 3]
    given_fields = RFGenerator(strides=(4, 8, 16, 32, 64), receptive_fields=(35, 91, 267, 427, 555))
    assert given_fields.base_sizes[-1] == 277.5


def test_rf_generator_rejects_bad_config():
    # strides must be powers of two from P2 up; receptive_fields one per level; fraction in (0, 1].
    with pytest.raises(ValueError, match="powers of two"):
        RFGenerator(strides=(4, 12))
    with pytest.raises(ValueError, match="one value per level"):
        RFGenerator(strides=(4, 8), receptive_fields=(35,))
    with pytest.raises(ValueError, match="fraction"):
        RFGenerator(strides=(4,), fraction=0.0)


def test_rfd_overlaps_is_one_over_one_plus_kl():
    calc = TASK_UTILS.build(dict(type="RFDOverlaps"))
    gt = squares(4)  # sigma 2
    # Prior of equal size shifted 4 px: KL = 0.5 * (4 / 2)^2 = 2 -> 1/3. Prior 2 x 2 on the centre
    # (sigma 1): KL(prior || gt) = 0.5 * (1/4 - 1 + ln 4) per axis, ln 4 - 0.75 for both.
    out = calc(gt, torch.cat([squares(8), torch.tensor([[3.0, 1, 5, 3]])]))
    assert out[0, 0].item() == pytest.approx(1 / 3)
    assert out[0, 1].item() == pytest.approx(1 / (1 + math.log(4) - 0.75))
    assert calc(gt, squares(8), is_aligned=True).item() == pytest.approx(1 / 3)
    assert calc(gt, squares(5), mode="iou").item() == pytest.approx(12 / 20)
    chunked = RFDOverlaps(max_elements=1)(squares(1, 2, 3), squares(0, 4, 9, 2))
    assert torch.equal(chunked, receptive_field_similarity(squares(1, 2, 3), squares(0, 4, 9, 2)))


# ---- the hierarchical assigner, by hand ----
# Priors: 4 x 4 squares (sigma 2) centred at x = 0, 4, 8, 12. Objects: 4 x 4 at x = 4 (A) and x = 5 (B).
# KL between equal sigmas = 0.5 * (d / 2)^2, similarity 1 / (1 + KL):
#   A: d = 4, 0, 4, 8  -> 1/3, 1, 1/3, 1/9        B: d = 5, 1, 3, 7 -> 0.242, 0.889, 0.471, 0.140
# Stage 1 (k = 1): both want prior 1; A is more similar (1 > 0.889) and takes it; B has nothing.
# Negatives (best similarity < 0.8): priors 0, 2, 3.
# Stage 2 (radius x 0.9): B's best free prior is prior 2 (3 px) rather than prior 0 (5 px).

PRIORS = InstanceData(priors=squares(0, 4, 8, 12))


def test_stage1_alone_leaves_b_without_positive():
    result = HieAssigner(topk=(1, 0)).assign(PRIORS, gts(4, 5))
    assert result.gt_inds.tolist() == [0, 1, 0, 0]
    expected = [1 / 3, 1.0, 1 / (1 + 1.125), 1 / (1 + 6.125)]
    assert result.max_overlaps.tolist() == pytest.approx(expected, rel=1e-5)


def test_stage2_compensates_the_unmatched_object():
    result = HieAssigner(topk=(1, 1), ratio=0.9).assign(PRIORS, gts(4, 5))
    assert result.gt_inds.tolist() == [0, 1, 2, 0]
    assert result.labels.tolist() == [-1, 0, 1, -1]


def test_stage2_scope_all_is_the_release_behaviour():
    # Every object re-ranks all priors; both pick prior 1 again (already positive) -> nothing added.
    result = HieAssigner(topk=(1, 1), stage2_scope="all").assign(PRIORS, gts(4, 5))
    assert result.gt_inds.tolist() == [0, 1, 0, 0]


def test_default_topk_three_then_one():
    # k1 = 3: A's top-3 are priors 1, 0, 2 (0 and 2 tie at 1/3, lower index first); B's are 1, 2, 0.
    # Priors 1 and 0 go to A (more similar), prior 2 to B (0.471 > 1/3). Both are matched, so stage 2
    # adds nothing; prior 3 (best 0.140) is negative.
    result = HieAssigner().assign(PRIORS, gts(4, 5))
    assert result.gt_inds.tolist() == [1, 1, 2, 0]


def test_empty_inputs_and_ignore_regions():
    empty_gt = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    assert HieAssigner().assign(PRIORS, empty_gt).gt_inds.tolist() == [0, 0, 0, 0]
    assert HieAssigner().assign(InstanceData(priors=torch.zeros(0, 4)), gts(4)).gt_inds.numel() == 0
    ignore = InstanceData(bboxes=squares(4, side=6))  # IoF: prior 1 1.0, priors 0 and 2 0.25, prior 3 0
    result = HieAssigner(topk=(1, 1), ignore_iof_thr=0.5).assign(PRIORS, gts(4, 5), ignore)
    # Prior 1 is out of play: A's top-1 is prior 0 (ties prior 2 at 1/3, lower index), B's is prior 2.
    assert result.gt_inds.tolist() == [1, -1, 2, 0]


def test_invalid_arguments():
    # Two stages of top-k, a shrink ratio in (0, 1], a closed set of stage-2 scopes.
    with pytest.raises(ValueError, match="topk"):
        HieAssigner(topk=(3,))
    with pytest.raises(ValueError, match="ratio"):
        HieAssigner(ratio=1.5)
    with pytest.raises(ValueError, match="stage2_scope"):
        HieAssigner(stage2_scope="some")


# ---- against a loop, and chunked against unchunked ----


def loop_hla(priors, gt_boxes, k1, k2, ratio, neg_thr, scope):
    """Plain-Python reference of the documented rules."""
    sim1 = receptive_field_similarity(gt_boxes, priors).tolist()
    sim2 = receptive_field_similarity(gt_boxes, rescale_boxes(priors, ratio)).tolist()
    num_gts, num_priors = len(sim1), len(sim1[0])
    gt_inds = [0 if max(sim1[i][j] for i in range(num_gts)) < neg_thr else -1 for j in range(num_priors)]

    def claim(sim, gt_ids, k, allowed):
        claims: dict[int, tuple[float, int]] = {}
        for i in gt_ids:
            order = sorted((j for j in range(num_priors) if allowed(j)), key=lambda j: (-sim[i][j], j))[:k]
            for j in order:
                if j not in claims or sim[i][j] > claims[j][0]:
                    claims[j] = (sim[i][j], i)
        return claims

    for j, (_, i) in claim(sim1, range(num_gts), k1, lambda j: True).items():
        gt_inds[j] = i + 1
    positive = {j for j in range(num_priors) if gt_inds[j] > 0}
    if scope == "unmatched":
        matched = {gt_inds[j] - 1 for j in positive}
        claims = claim(sim2, [i for i in range(num_gts) if i not in matched], k2, lambda j: j not in positive)
    else:
        claims = {j: c for j, c in claim(sim2, range(num_gts), k2, lambda j: True).items() if j not in positive}
    for j, (_, i) in claims.items():
        gt_inds[j] = i + 1
    return gt_inds


@settings(max_examples=30, deadline=None)
@given(
    objects=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 20), st.integers(1, 6)), min_size=1, max_size=8),
    k1=st.integers(1, 3),
    k2=st.integers(0, 2),
    scope=st.sampled_from(["unmatched", "all"]),
    budget=st.integers(1, 50),
)
def test_vectorised_equals_loop_and_chunking_is_invisible(objects, k1, k2, scope, budget):
    gen = RFGenerator(strides=(4, 8), ratios=(0.5, 1.0, 2.0))
    priors = torch.cat(gen.grid_priors([(6, 10), (3, 5)], device="cpu"))
    gt_boxes = torch.tensor([[x * 1.5, y * 1.5, x * 1.5 + 2 * s, y * 1.5 + s] for x, y, s in objects])
    gt = InstanceData(bboxes=gt_boxes, labels=torch.zeros(len(objects), dtype=torch.long))
    pred = InstanceData(priors=priors)
    whole = HieAssigner(topk=(k1, k2), stage2_scope=scope).assign(pred, gt)
    chunked = HieAssigner(topk=(k1, k2), stage2_scope=scope, max_elements=budget).assign(pred, gt)
    assert torch.equal(whole.gt_inds, chunked.gt_inds)
    assert torch.equal(whole.max_overlaps, chunked.max_overlaps)
    assert whole.gt_inds.tolist() == loop_hla(priors, gt_boxes, k1, k2, 0.9, 0.8, scope)
