"""ONNX export of the HS-FPN neck (:class:`hsfpn.nn.HSFPN`) and of a torchvision backbone with HS-FPN, checked in
onnxruntime before the file is written.

Which inputs a graph accepts. The height and width are fixed at export: the DCT bases, the cutoffs
``int(alpha * side)``, the adaptive pooling windows (:mod:`hsfpn.nn.pool`) and SDP's block grid are all computed
from the traced map sizes and stored in the graph as constants, so a graph exported at 800 x 800 refuses
803 x 797 (onnxruntime names the input and the dimension); export once per input size. The batch size is free
(``dynamic_batch=True``, the default): nothing in the neck depends on it.

Why it exports at all. Ports that keep torch-dct's FFT cannot be exported (no FFT operator in ONNX); our DCT is
four matrix products with cached bases. Adaptive max pooling to 16 x 16 has no ONNX operator and is written as
fixed windows while exporting (:mod:`hsfpn.nn.pool`), and GroupNorm is written out as its statistics so that
onnxruntime's float32 sums stay accurate (:func:`hsfpn.nn.layers.onnx_group_norm`).

Needs the ``export`` extra: ``onnx``, ``onnxscript`` (the exporter of ``torch.onnx.export``) and ``onnxruntime``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from dotamini10.io import atomic_path

from .errors import HSFPNError, first_line

__all__ = [
    "ExportReport",
    "OutputCheck",
    "export_backbone",
    "export_neck",
    "export_onnx",
    "load_weights",
    "neck_example_inputs",
    "onnxruntime_session",
    "resnet_map_sizes",
]

#: Largest |onnxruntime - torch| accepted on any output of an exported graph (fp32, CPU).
DEFAULT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class OutputCheck:
    """One output of the graph: its name, shape and largest |onnxruntime - torch eager| on the example input."""

    name: str
    shape: tuple[int, ...]
    max_abs_diff: float


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote.

    Attributes:
        path (Path): The ONNX file (weights inside it).
        inputs (tuple[tuple[str, tuple[int | str, ...]], ...]): Input names and shapes, ``'batch'`` where free.
        outputs (tuple[OutputCheck, ...]): Every output, checked against torch.
        opset (int): ONNX opset of the graph.
        size_bytes (int): File size.
        export_seconds (float): Time of ``torch.onnx.export``.
    """

    path: Path
    inputs: tuple[tuple[str, tuple[int | str, ...]], ...]
    outputs: tuple[OutputCheck, ...]
    opset: int
    size_bytes: int
    export_seconds: float

    @property
    def max_abs_diff(self) -> float:
        """The largest |onnxruntime - torch| over all outputs."""
        return max(o.max_abs_diff for o in self.outputs)


def require_export_tools() -> None:
    """Raise one line naming the missing package when ``onnx``, ``onnxscript`` or ``onnxruntime`` is absent."""
    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise HSFPNError(f"ONNX export needs {', '.join(missing)}: pip install 'hsfpn-toolkit[export]'")


def resnet_map_sizes(height: int, width: int, levels: int = 4) -> list[tuple[int, int]]:
    """Sizes of C2.. of a ResNet (strides 4, 8, ...) for an ``height x width`` image: every stride-2 step rounds up.

    Example:
        >>> resnet_map_sizes(803, 797)
        [(201, 200), (101, 100), (51, 50), (26, 25)]
    """
    sizes = []
    h, w = math.ceil(height / 4), math.ceil(width / 4)
    for _ in range(levels):
        sizes.append((h, w))
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return sizes


def neck_example_inputs(in_channels: Sequence[int], height: int, width: int, batch: int = 1,
                        seed: int = 0) -> list[Tensor]:
    """Random C2.. maps that a ResNet would give for an ``height x width`` image, one per input channel count."""
    g = torch.Generator().manual_seed(seed)
    sizes = resnet_map_sizes(height, width, len(in_channels))
    return [torch.randn(batch, c, *hw, generator=g) for c, hw in zip(in_channels, sizes)]


class _Positional(nn.Module):
    """A flat signature for the exporter: tensors in, a tuple of tensors out (dicts and lists flattened)."""

    def __init__(self, module: nn.Module, takes_list: bool) -> None:
        super().__init__()
        self.module = module
        self.takes_list = takes_list

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        out = self.module(list(inputs)) if self.takes_list else self.module(*inputs)
        return tuple(out.values()) if isinstance(out, Mapping) else tuple(out)


def export_onnx(
    module: nn.Module,
    inputs: Sequence[Tensor],
    out: Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str] | None = None,
    takes_list: bool = False,
    dynamic_batch: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportReport:
    """Export ``module`` (in eval mode) to ONNX, run the graph in onnxruntime and write it only if it agrees.

    Args:
        module (nn.Module): The neck (a list of maps in) or a backbone (images in); a mapping, list or tuple out.
        inputs (Sequence[Tensor]): Example inputs: their height and width are fixed in the graph.
        out (Path): The ``.onnx`` file to write (replaced atomically; nothing is written when a check fails).
        input_names (Sequence[str]): One name per input.
        output_names (Sequence[str], optional): One per output; defaults to the output mapping's keys.
        takes_list (bool): The module takes its inputs as one list (the neck). Defaults to False.
        dynamic_batch (bool): Leave the batch dimension free. Defaults to True.
        tolerance (float): Largest accepted |onnxruntime - torch|. Defaults to 1e-4.

    Returns:
        ExportReport: Shapes, the differences per output, the file size and the export time.

    Raises:
        HSFPNError: A missing export package, an output differing by more than ``tolerance``, or an exporter
            failure (its first line).
    """
    require_export_tools()
    out = Path(out)
    if not out.parent.is_dir():
        raise HSFPNError(f"{out.parent}: no such folder")
    module = module.eval()
    wrapper = _Positional(module, takes_list).eval()
    inputs = tuple(inputs)
    with torch.no_grad():
        raw = module(list(inputs)) if takes_list else module(*inputs)
    reference = list(raw.values()) if isinstance(raw, Mapping) else list(raw)
    if output_names is not None:
        names = list(output_names)
    else:
        names = [str(k) for k in raw] if isinstance(raw, Mapping) else [f"output{i}" for i in range(len(raw))]
    if len(names) != len(reference):
        raise HSFPNError(f"{len(names)} output names for {len(reference)} outputs")
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=1024)
        dynamic_shapes = {"inputs": tuple({0: batch} for _ in inputs)}  # the wrapper's *inputs
    start = time.perf_counter()
    try:
        # The exporter prints its progress on stdout and internal deprecation warnings; the outcome is checked
        # below, and the command prints its own summary.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(wrapper, inputs, dynamo=True, input_names=list(input_names),
                                        output_names=names, dynamic_shapes=dynamic_shapes, verbose=False)
    except Exception as exc:  # the exporter's errors are many types: the root cause says which op failed
        root = exc
        while root.__cause__ is not None:
            root = root.__cause__
        raise HSFPNError(f"torch.onnx.export failed: {first_line(root, limit=1000)}") from exc
    seconds = time.perf_counter() - start
    with atomic_path(out) as tmp:
        program.save(tmp, external_data=False)  # an OSError names the file (atomic_path) and is one line
        try:
            session = onnxruntime_session(tmp)
            results = session.run(None, {n: t.numpy() for n, t in zip(input_names, inputs)})
        except Exception as exc:  # onnxruntime's own error types (an op it lacks, a graph it refuses)
            raise HSFPNError(f"onnxruntime cannot run the exported graph ({first_line(exc)}): {out} not written") \
                from None
        checks = tuple(
            OutputCheck(name, tuple(ref.shape), float((torch.from_numpy(res) - ref).abs().max()))
            for name, ref, res in zip(names, reference, results)
        )
        worst = max(checks, key=lambda c: c.max_abs_diff)
        if not worst.max_abs_diff <= tolerance:  # also catches NaN
            raise HSFPNError(f"onnxruntime's {worst.name} differs from torch's by {worst.max_abs_diff:.3g} "
                             f"(> {tolerance:g}): {out} not written")
        shapes = tuple((i.name, tuple(d if isinstance(d, int) else "batch" for d in i.shape))
                       for i in session.get_inputs())
        opset = _opset(tmp)
    return ExportReport(out, shapes, checks, opset, out.stat().st_size, seconds)


def export_neck(neck: nn.Module, height: int, width: int, out: Path, *, batch: int = 1,
                dynamic_batch: bool = True, tolerance: float = DEFAULT_TOLERANCE) -> ExportReport:
    """Export an :class:`hsfpn.nn.HSFPN` for the maps of an ``height x width`` image (inputs ``c2``.., outputs
    ``p2``..; extra levels continue the numbering), checked on random maps of that size."""
    first = 2 + neck.start_level
    inputs = neck_example_inputs(neck.in_channels, height, width, batch)
    return export_onnx(neck, inputs, out, input_names=[f"c{2 + i}" for i in range(len(inputs))],
                       output_names=[f"p{first + i}" for i in range(neck.num_outs)], takes_list=True,
                       dynamic_batch=dynamic_batch, tolerance=tolerance)


def export_backbone(backbone: nn.Module, height: int, width: int, out: Path, *, batch: int = 1,
                    dynamic_batch: bool = True, tolerance: float = DEFAULT_TOLERANCE, seed: int = 0) -> ExportReport:
    """Export a backbone with its neck (e.g. :func:`hsfpn.torchvision.resnet_hsfpn_backbone`): input ``images``
    ``(N, 3, height, width)``, outputs named as its mapping (``'0'``..``'3'``, ``'pool'``), checked on random
    images of that size."""
    images = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))
    return export_onnx(backbone, [images], out, input_names=["images"], dynamic_batch=dynamic_batch,
                       tolerance=tolerance)


def load_weights(module: nn.Module, path: Path, prefixes: Sequence[str] = ("",)) -> str:
    """Load the weights of ``module`` from a file holding its state dict, strictly, and say where they were.

    The file holds a state dict, or a dict with one under ``'state_dict'`` or ``'model'`` (detector checkpoints);
    it is read with ``weights_only=True``, so it cannot run code. The module's entries are looked for under each
    of ``prefixes`` in turn (``''``, ``'neck.'``, ``'backbone.'``, ...), with torchvision's FPN names renamed to
    HS-FPN's (:func:`hsfpn.torchvision.fpn_to_hsfpn_state_dict`); the first prefix under which every entry is
    found with its shape is loaded.

    Args:
        module (nn.Module): The neck or backbone to fill.
        path (Path): The weights file.
        prefixes (Sequence[str]): Where the module may sit in the file's state dict.

    Returns:
        str: The prefix the weights were found under.

    Raises:
        HSFPNError: An unreadable file, or no prefix under which the module's entries all fit (the closest
            is named with a few missing or misshapen entries).
    """
    from .torchvision import fpn_to_hsfpn_state_dict

    from .checkpoints import load_weights_file

    path = Path(path)
    data = load_weights_file(path, kind="weights")
    for key in ("state_dict", "model"):
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
    if not isinstance(data, Mapping):
        raise HSFPNError(f"{path}: expected a state dict, got {type(data).__name__}")
    state = fpn_to_hsfpn_state_dict({str(k): v for k, v in data.items() if isinstance(v, Tensor)})
    wanted = module.state_dict()
    best: tuple[str, list[str]] | None = None  # the prefix that fits most entries, and its misfits
    for prefix in prefixes:
        found = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        bad = [k for k, v in wanted.items() if k not in found or found[k].shape != v.shape]
        if not bad:
            module.load_state_dict({k: found[k] for k in wanted}, strict=True)
            return prefix
        if best is None or len(bad) < len(best[1]):
            best = (prefix, bad)
    assert best is not None
    prefix, bad = best
    where = f"under '{prefix}'" if prefix else "at the top level"
    raise HSFPNError(f"{path}: weights do not fit: {len(bad)} of {len(wanted)} entries missing or of another shape "
                     f"{where} ({', '.join(bad[:3])})")


def onnxruntime_session(path: Path, threads: int | None = None):
    """An onnxruntime CPU session of the graph at ``path`` (``threads`` intra-op threads, its default if None)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
