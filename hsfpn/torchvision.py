"""HS-FPN in torchvision's detectors: :func:`resnet_hsfpn_backbone`, torchvision's ``resnet_fpn_backbone`` with HS-FPN.

The backbone it returns has torchvision's layout and interface: ``body`` (an ``IntermediateLayerGetter`` of the
ResNet), ``fpn`` (here :class:`HSFeaturePyramidNetwork`) and ``out_channels``; it maps an image batch to an
``OrderedDict`` of maps named as torchvision names them (``'0'``..``'3'``, then ``'pool'`` or ``'p6'``, ``'p7'`` of
the extra block), so ``FasterRCNN``, ``RetinaNet`` and ``FCOS`` take it as they take torchvision's own.

With ``channel_path=spatial_path=sdp=False`` the neck is torchvision's ``FeaturePyramidNetwork``: for the same
weights the outputs are equal. The weights move between the two by renaming (:func:`fpn_to_hsfpn_state_dict`,
:func:`hsfpn_to_fpn_state_dict`), so an FPN and an HS-FPN detector can start from the same backbone and FPN
weights and differ only by HS-FPN's own modules (:func:`load_fpn_weights`).

torchvision is optional: this module imports it on first use (:func:`load_torchvision`), never at import time.
"""

from __future__ import annotations

import os
import re
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from .errors import HSFPNError
from .nn.neck import HSFPN

__all__ = [
    "BackboneWithHSFPN",
    "HSFeaturePyramidNetwork",
    "compiled_ops_status",
    "fpn_to_hsfpn_state_dict",
    "hsfpn_to_fpn_state_dict",
    "load_fpn_weights",
    "load_torchvision",
    "resnet_hsfpn_backbone",
    "stage_defaults",
]

# torchvision's FPN names -> ours: its ``inner_blocks`` are the lateral 1x1 convs, its ``layer_blocks`` the 3x3
# output convs, each a ``Conv2dNormActivation`` whose conv is child ``0`` (no norm in resnet_fpn_backbone).
_TO_OURS = (
    (re.compile(r"(^|\.)inner_blocks\.(\d+)\.0\.(weight|bias)$"), r"\1lateral_convs.\2.conv.\3"),
    (re.compile(r"(^|\.)layer_blocks\.(\d+)\.0\.(weight|bias)$"), r"\1fpn_convs.\2.conv.\3"),
)
_TO_TORCHVISION = (
    (re.compile(r"(^|\.)lateral_convs\.(\d+)\.conv\.(weight|bias)$"), r"\1inner_blocks.\2.0.\3"),
    (re.compile(r"(^|\.)fpn_convs\.(\d+)\.conv\.(weight|bias)$"), r"\1layer_blocks.\2.0.\3"),
)
# Names of HS-FPN's own modules (no counterpart in an FPN).
_HSFPN_ONLY = re.compile(r"(^|\.)(hfps|sdps)\.")

# The schemas torchvision's import registers fake kernels for without checking that its compiled ops loaded.
_UNCHECKED_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_schema_library: Any = None


def load_torchvision() -> ModuleType:
    """Import torchvision, also where its compiled ops cannot load.

    torchvision's import registers a fake kernel for ``torchvision::nms`` without checking that its compiled
    library loaded (pytorch/vision issue 9085). With a torchvision build that does not match the torch build
    (here: the CUDA torchvision of the package index beside a CPU torch) the import then stops at "operator
    torchvision::nms does not exist", although its Python parts (models, ``FeaturePyramidNetwork``,
    ``IntermediateLayerGetter``, ``roi_align``'s Python path) work. In that case only, the two schemas are
    declared (no kernel) and the import is retried: torchvision then works as it would with its ops missing,
    and ``torchvision.ops.nms`` raises its own "Couldn't load custom C++ ops" error.

    Returns:
        ModuleType: The ``torchvision`` module.

    Raises:
        HSFPNError: When torchvision is not installed (the ``torchvision`` extra).
    """
    global _schema_library
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    try:
        import torchvision
    except ModuleNotFoundError as exc:
        if exc.name != "torchvision":
            raise
        raise HSFPNError("torchvision is not installed: pip install 'hsfpn-toolkit[torchvision]'") from None
    except RuntimeError as exc:
        if "torchvision::nms does not exist" not in str(exc):
            raise
        # The half-imported package is dropped whole, so the retry runs its __init__ from the start.
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _schema_library = torch.library.Library("torchvision", "FRAGMENT")
        for schema in _UNCHECKED_SCHEMAS:
            _schema_library.define(schema)
        import torchvision
    return torchvision


def compiled_ops_status() -> str | None:
    """None when torchvision's compiled ops (``nms``, ``roi_align``) run here, else why not, in one line."""
    torchvision = load_torchvision()
    try:
        torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
    except RuntimeError as exc:
        reason = str(exc).split(". ")[0]
        return (f"torchvision {torchvision.__version__} compiled ops do not load with torch {torch.__version__} "
                f"({reason})")
    return None


class HSFeaturePyramidNetwork(HSFPN):
    """:class:`hsfpn.nn.HSFPN` with torchvision's ``FeaturePyramidNetwork`` interface.

    Takes an ``OrderedDict`` of backbone maps (finest first) and returns an ``OrderedDict`` with the same names,
    then those of ``extra_blocks`` (torchvision's ``LastLevelMaxPool`` gives ``'pool'``, ``LastLevelP6P7`` gives
    ``'p6'``, ``'p7'``), which reads the neck's outputs and the backbone maps, as in torchvision.

    Initialisation: the lateral and output convs as torchvision's FPN initialises them (Kaiming-uniform with
    ``a=1``, zero bias), HS-FPN's modules as the authors' release (Xavier-uniform, GroupNorm 1 / 0); the extra
    block keeps its own.

    Args:
        in_channels_list (Sequence[int]): Channels of each backbone map, finest first.
        out_channels (int): Channels of every output (divisible by 32 when HFP or SDP is on).
        extra_blocks (nn.Module, optional): A torchvision ``ExtraFPNBlock``: ``(results, inputs, names) ->
            (results, names)``. Defaults to None (no extra level), as torchvision's FPN.
        **switches: HS-FPN's own arguments (``ratio``, ``channel_path``, ``spatial_path``, ``sdp``,
            ``dct_levels``, ``pool_sizes``, ``channel_fusion``; see :class:`hsfpn.nn.HSFPN`).

    Shape:
        - Input: ``OrderedDict[str, Tensor]`` of ``(N, in_channels_list[i], H_i, W_i)``.
        - Output: ``OrderedDict[str, Tensor]`` of ``(N, out_channels, H_j, W_j)``.
    """

    def __init__(
        self,
        in_channels_list: Sequence[int],
        out_channels: int,
        extra_blocks: nn.Module | None = None,
        **switches: Any,
    ) -> None:
        unknown = set(switches) - {"ratio", "channel_path", "spatial_path", "sdp", "dct_levels", "pool_sizes",
                                   "channel_fusion"}
        if unknown:
            raise TypeError(f"HSFeaturePyramidNetwork got unknown arguments: {', '.join(sorted(unknown))}")
        super().__init__(list(in_channels_list), out_channels, num_outs=len(in_channels_list), **switches)
        self.extra_blocks = extra_blocks

    def reset_parameters(self) -> None:
        """HS-FPN's modules as the release, then the lateral and output convs as torchvision's FPN."""
        super().reset_parameters()
        for block in (*self.lateral_convs, *self.fpn_convs):
            nn.init.kaiming_uniform_(block.conv.weight, a=1)
            nn.init.zeros_(block.conv.bias)

    def forward(self, x: Mapping[str, Tensor]) -> OrderedDict[str, Tensor]:  # type: ignore[override]
        """Run the neck, then the extra block.

        Args:
            x (Mapping[str, Tensor]): Backbone maps, finest first.

        Returns:
            OrderedDict[str, Tensor]: The maps under the input's names, then the extra block's.
        """
        names = list(x.keys())
        inputs = list(x.values())
        results = self.pyramid(inputs)
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, inputs, names)
        return OrderedDict(zip(names, results))


class BackboneWithHSFPN(nn.Module):
    """torchvision's ``BackboneWithFPN`` with :class:`HSFeaturePyramidNetwork`: ``body``, ``fpn``, ``out_channels``.

    Args:
        backbone (nn.Module): The classification network (e.g. a torchvision ResNet).
        return_layers (dict[str, str]): Its children whose outputs feed the neck, and their names (``{'layer1':
            '0', ...}``), as for torchvision's ``IntermediateLayerGetter``.
        in_channels_list (Sequence[int]): Channels of those outputs.
        out_channels (int): Channels of the neck's outputs.
        extra_blocks (nn.Module, optional): torchvision ``ExtraFPNBlock``. Defaults to ``LastLevelMaxPool()``.
        **switches: HS-FPN's arguments (see :class:`HSFeaturePyramidNetwork`).
    """

    def __init__(
        self,
        backbone: nn.Module,
        return_layers: dict[str, str],
        in_channels_list: Sequence[int],
        out_channels: int,
        extra_blocks: nn.Module | None = None,
        **switches: Any,
    ) -> None:
        super().__init__()
        torchvision = load_torchvision()
        from torchvision.models._utils import IntermediateLayerGetter

        if extra_blocks is None:
            extra_blocks = torchvision.ops.feature_pyramid_network.LastLevelMaxPool()
        self.body = IntermediateLayerGetter(backbone, return_layers=return_layers)
        self.fpn = HSFeaturePyramidNetwork(in_channels_list, out_channels, extra_blocks=extra_blocks, **switches)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """``(N, 3, H, W)`` images -> ``OrderedDict`` of ``(N, out_channels, H_j, W_j)`` maps, finest first."""
        return self.fpn(self.body(x))


def stage_defaults(returned_layers: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """HS-FPN's ``dct_levels`` and ``pool_sizes`` for the ResNet stages a backbone returns.

    The release filters C2 (``layer1``, pooling grid 16) and C3 (``layer2``, grid 8) and pools C4 and C5
    globally; the defaults follow the stage, not the position in the list, so ``returned_layers=[2, 3, 4]``
    (RetinaNet, FCOS) filters only its first map, C3, with grid 8.

    Args:
        returned_layers (Sequence[int]): ResNet stages 1..4, in increasing order.

    Returns:
        tuple[tuple[int, ...], tuple[int, ...]]: ``(dct_levels, pool_sizes)``, indices into the returned maps.

    Example:
        >>> stage_defaults([2, 3, 4])
        ((0,), (8, 1, 1))
    """
    dct_levels = tuple(i for i, stage in enumerate(returned_layers) if stage <= 2)
    pool_sizes = tuple(16 >> (stage - 1) if stage <= 2 else 1 for stage in returned_layers)
    return dct_levels, pool_sizes


def resnet_hsfpn_backbone(
    *,
    backbone_name: str,
    weights: str | os.PathLike | Any | None,
    norm_layer: Callable[..., nn.Module] | None = None,
    trainable_layers: int = 3,
    returned_layers: Sequence[int] | None = None,
    extra_blocks: nn.Module | None = None,
    out_channels: int = 256,
    **switches: Any,
) -> BackboneWithHSFPN:
    """A ResNet with HS-FPN on top, as torchvision's ``resnet_fpn_backbone`` builds one with FPN.

    Same arguments and defaults as ``resnet_fpn_backbone`` (the stem and ``layer1`` frozen by
    ``trainable_layers=3``, ``FrozenBatchNorm2d``, all four stages returned, ``LastLevelMaxPool``, 256 channels),
    plus every HS-FPN switch.

    Args:
        backbone_name (str): A torchvision ResNet: ``'resnet18'``, ``'resnet50'``, ``'resnext50_32x4d'``, ...
        weights (str | PathLike | WeightsEnum | None): A file holding the ResNet's state dict (e.g. torchvision's
            ImageNet ``resnet50-0676ba61.pth``; read with ``weights_only=True``), a torchvision ``WeightsEnum``
            (passed to torchvision, which may download it), or None for random initialisation.
        norm_layer (callable, optional): The ResNet's norm layer. Defaults to torchvision's ``FrozenBatchNorm2d``.
        trainable_layers (int): Stages left trainable, counted from ``layer4``; 0 to 5 (5 also trains ``bn1``).
        returned_layers (Sequence[int], optional): ResNet stages (1..4) feeding the neck. Defaults to all four.
        extra_blocks (nn.Module, optional): torchvision ``ExtraFPNBlock``. Defaults to ``LastLevelMaxPool()``.
        out_channels (int): Channels of the neck. Defaults to 256.
        **switches: HS-FPN's arguments: ``ratio``, ``channel_path``, ``spatial_path``, ``sdp``, ``dct_levels``,
            ``pool_sizes``, ``channel_fusion`` (see :class:`hsfpn.nn.HSFPN`). ``dct_levels`` and ``pool_sizes``
            default to the release's choice for the returned stages (:func:`stage_defaults`).

    Returns:
        BackboneWithHSFPN: ``body``, ``fpn`` and ``out_channels``, for ``FasterRCNN``, ``RetinaNet``, ``FCOS``.

    Raises:
        HSFPNError: An unknown ResNet, a weights file that is not its state dict, or an argument out of range.
    """
    torchvision = load_torchvision()
    from torchvision.models import resnet

    if not 0 <= trainable_layers <= 5:
        raise HSFPNError(f"trainable_layers must be in [0, 5], got {trainable_layers}")
    returned_layers = [1, 2, 3, 4] if returned_layers is None else [int(s) for s in returned_layers]
    if not returned_layers or returned_layers != sorted(set(returned_layers)) or not all(
            1 <= s <= 4 for s in returned_layers):
        raise HSFPNError(f"returned_layers must be increasing ResNet stages in [1, 4], got {returned_layers}")
    builder = getattr(resnet, backbone_name, None) if not backbone_name.startswith("_") else None
    if not callable(builder) or backbone_name not in resnet.__all__:
        names = ", ".join(n for n in resnet.__all__ if not n[0].isupper() and n != "resnet")
        raise HSFPNError(f"unknown backbone {backbone_name!r}; torchvision's ResNets: {names}")
    norm_layer = norm_layer or torchvision.ops.misc.FrozenBatchNorm2d
    from_file = isinstance(weights, (str, os.PathLike))
    body = builder(weights=None if from_file else weights, norm_layer=norm_layer)
    if from_file:
        _load_resnet_file(body, weights, backbone_name)

    layers_to_train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        layers_to_train.append("bn1")
    for name, parameter in body.named_parameters():
        if not any(name.startswith(layer) for layer in layers_to_train):
            parameter.requires_grad_(False)

    dct_levels, pool_sizes = stage_defaults(returned_layers)
    switches.setdefault("dct_levels", dct_levels)
    switches.setdefault("pool_sizes", pool_sizes)
    return_layers = {f"layer{stage}": str(i) for i, stage in enumerate(returned_layers)}
    stage2 = body.inplanes // 8  # channels of layer1's output (64 for BasicBlock, 256 for Bottleneck)
    in_channels_list = [stage2 * 2 ** (stage - 1) for stage in returned_layers]
    try:
        return BackboneWithHSFPN(body, return_layers, in_channels_list, out_channels, extra_blocks, **switches)
    except ValueError as exc:  # the neck's own checks of the switches
        raise HSFPNError(str(exc)) from None


def _load_resnet_file(body: nn.Module, path: str | os.PathLike, backbone_name: str) -> None:
    """Load a ResNet state dict from ``path`` into ``body`` (strict), naming the file in any error."""
    from .checkpoints import load_weights_file

    state = load_weights_file(Path(path), kind="weights")
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise HSFPNError(f"{path}: expected a state dict of tensors (a {backbone_name}'s), got {type(state).__name__}")
    # Compared before loading: load_state_dict raises on a shape mismatch even when not strict.
    shapes = {k: tuple(v.shape) for k, v in body.state_dict().items()}
    missing = [k for k in shapes if k not in state]
    # FrozenBatchNorm2d has no num_batches_tracked and drops a file's on load, as torchvision's loading does.
    unexpected = [k for k in state if k not in shapes and not k.endswith(".num_batches_tracked")]
    wrong = [k for k, v in state.items() if k in shapes and tuple(v.shape) != shapes[k]]
    if missing or unexpected or wrong:
        raise HSFPNError(
            f"{path}: not a {backbone_name} state dict: {len(missing)} missing ({', '.join(missing[:3])}), "
            f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}), {len(wrong)} of another shape "
            f"({', '.join(wrong[:3])})"
        )
    body.load_state_dict(state, strict=True)


def _rename(state_dict: Mapping[str, Tensor], rules) -> OrderedDict[str, Tensor]:
    out: OrderedDict[str, Tensor] = OrderedDict()
    for key, value in state_dict.items():
        for pattern, replacement in rules:
            key = pattern.sub(replacement, key)
        out[key] = value
    return out


def fpn_to_hsfpn_state_dict(state_dict: Mapping[str, Tensor]) -> OrderedDict[str, Tensor]:
    """torchvision FPN names -> HS-FPN names, for a neck, a backbone or a whole detector's state dict.

    ``inner_blocks.{i}.0.{weight,bias}`` -> ``lateral_convs.{i}.conv.*`` and ``layer_blocks.{i}.0.*`` ->
    ``fpn_convs.{i}.conv.*``, under any prefix (``fpn.``, ``backbone.fpn.``); every other entry (the ResNet, the
    extra block, the heads) keeps its name. The tensors are shared, not copied.
    """
    return _rename(state_dict, _TO_OURS)


def hsfpn_to_fpn_state_dict(state_dict: Mapping[str, Tensor]) -> OrderedDict[str, Tensor]:
    """The inverse of :func:`fpn_to_hsfpn_state_dict`, for a neck with HFP and SDP off.

    Raises:
        HSFPNError: When the state dict holds HS-FPN's own modules (``hfps``, ``sdps``), which an FPN has not.
    """
    own = [k for k in state_dict if _HSFPN_ONLY.search(k)]
    if own:
        raise HSFPNError(f"{len(own)} entries belong to HS-FPN's own modules ({own[0]}, ...), which an FPN has not: "
                         "build the HS-FPN with channel_path=spatial_path=sdp=False")
    return _rename(state_dict, _TO_TORCHVISION)


def load_fpn_weights(model: nn.Module, fpn_state_dict: Mapping[str, Tensor]) -> list[str]:
    """Load an FPN model's weights (torchvision names) into the same model built with HS-FPN.

    Every entry of ``fpn_state_dict`` must find its place (after renaming) with the same shape, and every
    parameter of ``model`` must be filled except HS-FPN's own modules, which keep their values.

    Args:
        model (nn.Module): A :class:`BackboneWithHSFPN`, or a detector built on one.
        fpn_state_dict (Mapping[str, Tensor]): The state dict of the same model with torchvision's FPN.

    Returns:
        list[str]: The entries of ``model`` left as they were (HS-FPN's own modules).

    Raises:
        HSFPNError: When an entry has no place or another shape, or a non-HS-FPN entry is missing.
    """
    renamed = fpn_to_hsfpn_state_dict(fpn_state_dict)
    own = model.state_dict()
    unexpected = [k for k in renamed if k not in own]
    wrong = [k for k, v in renamed.items() if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in renamed and not _HSFPN_ONLY.search(k)]
    if unexpected or wrong or missing:
        raise HSFPNError(f"FPN weights do not fit this model: {len(unexpected)} without a place "
                         f"({', '.join(unexpected[:3])}), {len(wrong)} of another shape ({', '.join(wrong[:3])}), "
                         f"{len(missing)} missing ({', '.join(missing[:3])})")
    model.load_state_dict(renamed, strict=False)
    return [k for k in own if k not in renamed]
