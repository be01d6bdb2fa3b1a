"""Tests of hsfpn.torchvision: the backbone is torchvision's resnet_fpn_backbone with HS-FPN, equal to it with HFP and
SDP off (same weights through the name mapping), and accepted by torchvision's detectors.

Here torchvision's compiled ops (nms) do not load beside the CPU torch, so detectors run only in training mode
where they need none (RetinaNet, FCOS); Faster R-CNN's training and eval boxes run in benchmarks/gpu_suite.py."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from hsfpn.errors import HSFPNError
from hsfpn.torchvision import (
    HSFeaturePyramidNetwork,
    compiled_ops_status,
    fpn_to_hsfpn_state_dict,
    hsfpn_to_fpn_state_dict,
    load_fpn_weights,
    load_torchvision,
    resnet_hsfpn_backbone,
    stage_defaults,
)

torchvision = load_torchvision()
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet  # noqa: E402
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone  # noqa: E402
from torchvision.ops import FeaturePyramidNetwork  # noqa: E402
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7  # noqa: E402

FPN_MODE = dict(channel_path=False, spatial_path=False, sdp=False)
REPO = Path(__file__).resolve().parent.parent


def fpn_and_ours(returned_layers=None, extra=None, **switches):
    """torchvision's FPN backbone (random init) and ours with its weights (plus HS-FPN's own modules' init)."""
    torch.manual_seed(0)
    ref = resnet_fpn_backbone(backbone_name="resnet18", weights=None, returned_layers=returned_layers,
                              extra_blocks=extra() if extra else None)
    ours = resnet_hsfpn_backbone(backbone_name="resnet18", weights=None, returned_layers=returned_layers,
                                 extra_blocks=extra() if extra else None, **switches)
    load_fpn_weights(ours, ref.state_dict())
    return ref.eval(), ours.eval()


@pytest.mark.parametrize("size", [(224, 224), (203, 157)])
def test_fpn_mode_equals_torchvision_resnet_fpn_backbone(size):
    ref, ours = fpn_and_ours(**FPN_MODE)
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert list(b) == list(a) == ["0", "1", "2", "3", "pool"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fpn_mode_equals_torchvision_with_p6p7_on_three_stages():
    # RetinaNet's and FCOS's layout: C3..C5 and LastLevelP6P7 (which reads P5), the extra block's weights shared.
    ref, ours = fpn_and_ours(returned_layers=[2, 3, 4], extra=lambda: LastLevelP6P7(256, 256), **FPN_MODE)
    x = torch.rand(1, 3, 160, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert list(b) == list(a) == ["0", "1", "2", "p6", "p7"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_neck_alone_equals_feature_pyramid_network_under_any_names():
    torch.manual_seed(0)
    channels = [16, 32, 64]
    ref = FeaturePyramidNetwork(channels, 32, extra_blocks=LastLevelMaxPool()).eval()
    ours = HSFeaturePyramidNetwork(channels, 32, extra_blocks=LastLevelMaxPool(), **FPN_MODE).eval()
    ours.load_state_dict(fpn_to_hsfpn_state_dict(ref.state_dict()), strict=True)
    g = torch.Generator().manual_seed(3)
    x = OrderedDict((name, torch.randn(2, c, 33 >> i, 20 >> i, generator=g))
                    for i, (name, c) in enumerate(zip(["feat0", "feat2", "feat3"], channels)))
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert list(b) == ["feat0", "feat2", "feat3", "pool"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_of_the_shared_convs_is_torchvisions():
    # Kaiming-uniform (a=1): bound sqrt(6 / (2 * fan_in)) = sqrt(3 / fan_in); biases zero.
    neck = HSFeaturePyramidNetwork([64, 512], 256)
    for block, fan_in in ((neck.lateral_convs[1], 512), (neck.fpn_convs[0], 256 * 9)):
        bound = (3 / fan_in) ** 0.5
        assert 0.9 * bound < float(block.conv.weight.detach().abs().max()) <= bound
        assert torch.count_nonzero(block.conv.bias) == 0


def test_state_dict_mapping_is_a_renaming_and_its_inverse():
    ref = resnet_fpn_backbone(backbone_name="resnet18", weights=None)
    sd = ref.state_dict()
    ours = fpn_to_hsfpn_state_dict(sd)
    assert "fpn.lateral_convs.3.conv.weight" in ours and "fpn.fpn_convs.0.conv.bias" in ours
    assert ours["fpn.lateral_convs.2.conv.weight"] is sd["fpn.inner_blocks.2.0.weight"]
    assert [k for k in ours if "fpn" not in k] == [k for k in sd if "fpn" not in k]
    back = hsfpn_to_fpn_state_dict(ours)
    assert list(back) == list(sd) and all(back[k] is sd[k] for k in sd)
    # Detector prefixes keep working.
    assert "backbone.fpn.lateral_convs.0.conv.weight" in fpn_to_hsfpn_state_dict(
        {"backbone.fpn.inner_blocks.0.0.weight": torch.zeros(1)})
    hsfpn = resnet_hsfpn_backbone(backbone_name="resnet18", weights=None)
    with pytest.raises(HSFPNError, match="HS-FPN's own modules"):
        hsfpn_to_fpn_state_dict(hsfpn.state_dict())


def test_load_fpn_weights_leaves_only_hsfpn_modules_at_init():
    torch.manual_seed(0)
    ref = resnet_fpn_backbone(backbone_name="resnet18", weights=None)
    ours = resnet_hsfpn_backbone(backbone_name="resnet18", weights=None)
    kept = load_fpn_weights(ours, ref.state_dict())
    assert kept and all(k.startswith(("fpn.hfps.", "fpn.sdps.")) for k in kept)
    renamed = fpn_to_hsfpn_state_dict(ref.state_dict())
    state = ours.state_dict()
    assert all(torch.equal(state[k], v) for k, v in renamed.items())
    # FPN weights of another shape (resnet50's) are refused, naming entries.
    with pytest.raises(HSFPNError, match="do not fit"):
        load_fpn_weights(ours, resnet_fpn_backbone(backbone_name="resnet50", weights=None).state_dict())


@pytest.mark.parametrize("trainable", [0, 3, 5])
def test_frozen_layers_are_torchvisions(trainable):
    ref = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=trainable)
    ours = resnet_hsfpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=trainable)
    flags = dict((k, p.requires_grad) for k, p in ours.named_parameters())
    assert [(k, p.requires_grad) for k, p in ref.body.named_parameters(prefix="body")] == [
        (k, flags[k]) for k, _ in ref.body.named_parameters(prefix="body")]
    assert all(p.requires_grad for p in ours.fpn.parameters())


def test_shapes_out_channels_and_switch_defaults_follow_the_stages():
    backbone = resnet_hsfpn_backbone(backbone_name="resnet50", weights=None, out_channels=128)
    assert backbone.out_channels == 128
    assert backbone.fpn.options.dct_levels == (0, 1) and backbone.fpn.options.pool_sizes == (16, 8, 1, 1)
    with torch.no_grad():
        out = backbone.eval()(torch.rand(1, 3, 256, 192))
    assert [(k, tuple(v.shape)) for k, v in out.items()] == [
        ("0", (1, 128, 64, 48)), ("1", (1, 128, 32, 24)), ("2", (1, 128, 16, 12)), ("3", (1, 128, 8, 6)),
        ("pool", (1, 128, 4, 3))]
    assert stage_defaults([2, 3, 4]) == ((0,), (8, 1, 1))
    assert stage_defaults([1, 3]) == ((0,), (16, 1))
    three = resnet_hsfpn_backbone(backbone_name="resnet18", weights=None, returned_layers=[2, 3, 4])
    assert three.fpn.options.dct_levels == (0,) and [m.high_pass is not None for m in three.fpn.hfps] == [
        True, False, False]


def test_bad_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(HSFPNError, match="unknown backbone 'resnet9'"):
        resnet_hsfpn_backbone(backbone_name="resnet9", weights=None)
    with pytest.raises(HSFPNError, match="trainable_layers"):
        resnet_hsfpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=6)
    with pytest.raises(HSFPNError, match="returned_layers"):
        resnet_hsfpn_backbone(backbone_name="resnet18", weights=None, returned_layers=[0, 1])
    with pytest.raises(HSFPNError, match="divisible by 32"):
        resnet_hsfpn_backbone(backbone_name="resnet18", weights=None, out_channels=48)


def test_weights_file_loads_strictly_and_safely(tmp_path):
    torch.manual_seed(5)
    resnet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), path)
    backbone = resnet_hsfpn_backbone(backbone_name="resnet18", weights=path)
    assert torch.equal(backbone.body.conv1.weight, resnet.conv1.weight)
    assert torch.equal(backbone.body.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight)
    with pytest.raises(HSFPNError, match=r"resnet18.pth: not a resnet34 state dict: \d+ missing"):
        resnet_hsfpn_backbone(backbone_name="resnet34", weights=path)
    # Same names, other shapes (a file of another width): one line, where load_state_dict would raise.
    wide = {k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) if k == "conv1.weight" else v
            for k, v in resnet.state_dict().items()}
    torch.save(wide, tmp_path / "wide.pth")
    with pytest.raises(HSFPNError, match=r"wide.pth: not a resnet18 state dict: 0 missing \(\), 0 unexpected \(\), "
                                         r"1 of another shape \(conv1.weight\)$"):
        resnet_hsfpn_backbone(backbone_name="resnet18", weights=tmp_path / "wide.pth")
    with pytest.raises(HSFPNError, match="no such weights file"):
        resnet_hsfpn_backbone(backbone_name="resnet18", weights=tmp_path / "missing.pth")
    # A pickle that would run code on load is refused (weights_only), and nothing runs.
    planted = tmp_path / "planted.pth"
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    planted.write_bytes(pickle.dumps({"conv1.weight": Payload()}, protocol=2))
    with pytest.raises(HSFPNError, match="planted.pth: not a readable weights-only weights file"):
        resnet_hsfpn_backbone(backbone_name="resnet18", weights=planted)
    assert not marker.exists()


def detection_batch(seed=0, size=160):
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, size, size, generator=g) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 60.0, 70.0], [80.0, 30.0, 120.0, 90.0]]),
                "labels": torch.tensor([1, 2])} for _ in images]
    return images, targets


@pytest.mark.parametrize("detector", ["RetinaNet", "FCOS"])
def test_one_stage_detectors_train_on_the_backbone(detector):
    # Training needs no nms: both heads take the backbone as torchvision's own, losses are finite and every
    # HS-FPN parameter gets a gradient.
    torch.manual_seed(0)
    backbone = resnet_hsfpn_backbone(backbone_name="resnet18", weights=None, returned_layers=[2, 3, 4],
                                     extra_blocks=LastLevelP6P7(256, 256), trainable_layers=5)
    model = {"RetinaNet": RetinaNet, "FCOS": FCOS}[detector](backbone, num_classes=3, min_size=160, max_size=160)
    losses = model.train()(*detection_batch())
    total = sum(losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in backbone.fpn.hfps.parameters())
    assert all(p.grad is not None for p in backbone.fpn.sdps.parameters())


def test_faster_rcnn_takes_the_backbone():
    backbone = resnet_hsfpn_backbone(backbone_name="resnet18", weights=None)
    model = FasterRCNN(backbone, num_classes=3, min_size=128, max_size=128).eval()
    # Its RoI pooling reads the maps by torchvision's names; the RPN's anchors need five maps.
    assert model.roi_heads.box_roi_pool.featmap_names == ["0", "1", "2", "3"]
    images, _ = detection_batch(size=128)
    with torch.no_grad():
        image_list, _ = model.transform(images)
        features = model.backbone(image_list.tensors)
    assert list(features) == ["0", "1", "2", "3", "pool"]
    assert model.rpn.anchor_generator.num_anchors_per_location() == [3] * len(features)


def test_compiled_ops_status_says_whether_nms_runs():
    status = compiled_ops_status()
    try:
        torchvision.ops.nms(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([1.0]), 0.5)
        runs = True
    except RuntimeError:
        runs = False
    assert (status is None) == runs
    if status is not None:
        assert status.startswith(f"torchvision {torchvision.__version__} compiled ops do not load")


def test_readme_torchvision_example_runs():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### In torchvision's detectors", 1)[1].split("\n### ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert isinstance(namespace["model"], FasterRCNN)
    assert [(k, tuple(v.shape)) for k, v in namespace["features"].items()] == [
        ("0", (1, 256, 80, 80)), ("1", (1, 256, 40, 40)), ("2", (1, 256, 20, 20)), ("3", (1, 256, 10, 10)),
        ("pool", (1, 256, 5, 5))]


def test_mmengine_logs_the_torchvision_version_in_a_fresh_process():
    # MMEngine's runner imports torchvision to log the environment and catches only ModuleNotFoundError: where
    # the index's torchvision cannot load its ops, setup.sh's import guard keeps every training run from stopping.
    import subprocess
    import sys

    code = ("import torchvision\nfrom mmengine.utils.dl_utils import collect_env\n"
            "print(collect_env()['TorchVision'] == torchvision.__version__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "True"


def test_load_torchvision_imports_it_without_the_setup_guard():
    # Without scripts/torchvision_guard.py (a pip install of the package) load_torchvision retries the import itself.
    import subprocess
    import sys

    code = ("import sys\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_TorchvisionGuard']\n"
            "from hsfpn.torchvision import compiled_ops_status, load_torchvision\n"
            "torchvision = load_torchvision()\n"
            "from torchvision.ops import FeaturePyramidNetwork\n"
            "import hsfpn.torchvision as h\n"
            "print(torchvision.__version__, compiled_ops_status() is None, h._schema_library is None)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    version, runs, no_schemas = result.stdout.split()
    assert version == torchvision.__version__ and runs == str(compiled_ops_status() is None)
    assert no_schemas == runs  # the schemas were declared exactly where the ops do not load
