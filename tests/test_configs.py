"""Every detector config builds, takes one SGD training step and predicts on a tiny input, with both necks.

One model is built per (config, neck) and used for both the step and the prediction. The label-assignment
rows (w/NWD, w/RFLA) are the plain configs plus assigner overrides: each takes a step with one neck.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipelines.datasets import DatasetLayout
from pipelines.detectors import DETECTORS, VARIANTS, build_job_config
from pipelines.presets import resolve_settings

SIZE = 64  # multiple of 32 (SDP blocks); P6 is 1 x 1
# SAC's reflect padding of 2 needs C5 maps of at least 3 x 3: DetectoRS gets 128 px.
SIZES = {"detectors": 128, "detectors_rfla": 128}
LAYOUT = DatasetLayout("synthetic", Path("/data"), ("box", "disc"), "a/train.json", "i/train/", "a/test.json", "i/test/")
SETTINGS = resolve_settings("smoke", Path("/w"), img_scale=SIZE, max_per_img=50)

BASE_ROWS = [k for k, d in DETECTORS.items() if d.reproduced and d.assigner is None]
ASSIGNER_ROWS = [k for k, d in DETECTORS.items() if d.assigner is not None]
CASES = [(row, neck) for row in BASE_ROWS for neck in ("fpn", "hsfpn")] + [
    (row, "hsfpn" if i % 2 == 0 else "fpn") for i, row in enumerate(ASSIGNER_ROWS)
]


def _batch(size: int):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 40, (3, size, size), dtype=torch.uint8, generator=g)
    img[:, 10:22, 12:24] = 230  # two bright tiny objects
    img[:, 40:50, 44:54] = 200
    meta = dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0))
    sample = DetDataSample(metainfo=meta)
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[12.0, 10.0, 24.0, 22.0], [44.0, 40.0, 54.0, 50.0]]), labels=torch.tensor([0, 1])
    )
    return dict(inputs=[img], data_samples=[sample])


@pytest.mark.slow
@pytest.mark.parametrize(("row", "neck"), CASES, ids=[f"{r}-{n}" for r, n in CASES])
def test_config_trains_one_step_and_predicts(row, neck):
    from mmdet.registry import MODELS
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    import hsfpn  # noqa: F401  (registers HSFPN, AITODMetric and the assigners, as custom_imports does)

    init_default_scope("mmdet")
    torch.manual_seed(0)
    cfg = build_job_config(DETECTORS[row], VARIANTS[neck], LAYOUT, SETTINGS)
    model = MODELS.build(cfg.model)
    model.init_weights()
    expected_neck = "HSFPN" if neck == "hsfpn" else ("RFP" if row.startswith("detectors") else "FPN")
    assert type(model.neck).__name__ == expected_neck

    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    lateral = next(p for n, p in model.neck.named_parameters() if "lateral" in n)
    before = lateral.detach().clone()
    log_vars = model.train_step(_batch(SIZES.get(row, SIZE)), optim)
    assert torch.isfinite(log_vars["loss"]) and log_vars["loss"] > 0
    assert not torch.equal(before, lateral.detach())  # the step reached the neck

    model.eval()
    with torch.no_grad():
        out = model.test_step(_batch(SIZES.get(row, SIZE)))
    pred = out[0].pred_instances
    assert pred.bboxes.shape[1:] == (4,) and len(pred) <= 50
    assert len(pred.labels) == 0 or int(pred.labels.max()) < 2
