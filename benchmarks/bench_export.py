"""Benchmark the exported ONNX graphs in onnxruntime (CPU) against torch eager on the same CPU threads.

Models (random weights, fixed seed), each exported by :mod:`hsfpn.export` (which checks the graph against torch
before writing it) into a temporary folder:

- ``neck``: :class:`hsfpn.nn.HSFPN` with ResNet-50 channels (C2..C5 = 256..2048 -> 256, 5 outputs);
- ``fpn-neck``: the same neck with every HS-FPN switch off (a plain FPN), for scale;
- ``backbone``: ResNet-50 + HS-FPN from :func:`hsfpn.torchvision.resnet_hsfpn_backbone` (needs torchvision).

For each: median wall time of a forward in torch (``no_grad``, eval) and in onnxruntime, run alternately after a
warm-up, their ratio (onnxruntime / torch: below 1 means onnxruntime is faster), the largest output difference and
the export time. Both use ``--threads`` intra-op threads.

Usage::

    python benchmarks/bench_export.py                          # 800 x 800, batch 1, 5 repeats, 2 threads
    python benchmarks/bench_export.py --size 512 --repeats 3 --models neck fpn-neck
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402

from hsfpn.export import (  # noqa: E402
    export_backbone,
    export_neck,
    neck_example_inputs,
    onnxruntime_session,
)
from hsfpn.nn import HSFPN  # noqa: E402

MODELS = ("neck", "fpn-neck", "backbone")
RESNET50 = [256, 512, 1024, 2048]
FPN_MODE = dict(channel_path=False, spatial_path=False, sdp=False)


def build(model: str, height: int, width: int, batch: int, folder: Path):
    """The module, its export report and the example inputs (a list of tensors) of one model."""
    torch.manual_seed(0)
    if model in ("neck", "fpn-neck"):
        module = HSFPN(RESNET50, 256, 5, **(FPN_MODE if model == "fpn-neck" else {})).eval()
        report = export_neck(module, height, width, folder / f"{model}.onnx", batch=batch)
        inputs = neck_example_inputs(RESNET50, height, width, batch, seed=1)
        return (lambda: module(inputs)), report, inputs
    from hsfpn.torchvision import resnet_hsfpn_backbone

    module = resnet_hsfpn_backbone(backbone_name="resnet50", weights=None).eval()
    report = export_backbone(module, height, width, folder / f"{model}.onnx", batch=batch)
    inputs = [torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(1))]
    return (lambda: module(inputs[0])), report, inputs


def measure(model: str, height: int, width: int, batch: int, repeats: int, threads: int, folder: Path) -> dict:
    torch_forward, report, inputs = build(model, height, width, batch, folder)
    session = onnxruntime_session(report.path, threads=threads)
    feeds = {name: t.numpy() for (name, _), t in zip(report.inputs, inputs)}
    times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
    with torch.no_grad():
        torch_forward()
        session.run(None, feeds)
        for _ in range(repeats):  # alternate, so that a slower phase of a shared machine hits both
            start = time.perf_counter()
            torch_forward()
            times["torch"].append(time.perf_counter() - start)
            start = time.perf_counter()
            session.run(None, feeds)
            times["onnxruntime"].append(time.perf_counter() - start)
    eager, ort = statistics.median(times["torch"]), statistics.median(times["onnxruntime"])
    return dict(model=model, torch=eager, onnxruntime=ort, ratio=ort / eager, diff=report.max_abs_diff,
                export=report.export_seconds, mib=report.size_bytes / 2**20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs="+", default=[800], help="H [W] of the image (default 800)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of torch and onnxruntime")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    args = parser.parse_args()
    height, width = args.size[0], args.size[-1]
    torch.set_num_threads(args.threads)
    import onnxruntime

    print(f"torch {torch.__version__} eager vs onnxruntime {onnxruntime.__version__} (CPUExecutionProvider), "
          f"{height} x {width}, batch {args.batch}, {args.threads} threads, median of {args.repeats}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            rows.append(measure(model, height, width, args.batch, args.repeats, args.threads, Path(tmp)))
    print(f"{'model':<10} {'torch s':>9} {'onnxrt s':>9} {'onnxrt/torch':>13} {'max |diff|':>11} {'export s':>9} "
          f"{'MiB':>7}")
    for r in rows:
        print(f"{r['model']:<10} {r['torch']:>9.3f} {r['onnxruntime']:>9.3f} {r['ratio']:>13.2f} {r['diff']:>11.1e} "
              f"{r['export']:>9.1f} {r['mib']:>7.1f}")


if __name__ == "__main__":
    main()
