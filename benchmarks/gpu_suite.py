"""HS-FPN on a GPU in one command: the neck against FPN, the GPU against the CPU, torchvision detectors with each.

Runs on a bare machine with torch and CUDA (torchvision when present): it imports torch, torchvision and, from
this repository, only :mod:`hsfpn.nn` and :mod:`hsfpn.torchvision` (plus ``benchmarks/bench_neck.py``'s timing
helpers); no MMCV, no MMDetection. Under 5 minutes on one current GPU. It prints one Markdown table:

- neck: :class:`hsfpn.nn.HSFPN` against the plain FPN (the same class with every HS-FPN switch off, same weights)
  with ResNet-50 channels at 800 x 800, batch 2: forward and forward+backward, fp32 and bf16 autocast; median
  time, peak memory and the HS-FPN / FPN ratios (target: forward+backward in bf16 at most 2x);
- GPU vs CPU: the largest |GPU - CPU| of the neck's outputs (fp32, TF32 off), next to the outputs' size;
- detector: torchvision Faster R-CNN (ResNet-50, 800 x 800, batch 2, BatchNorm as torchvision uses it without
  pretrained weights) with FPN and with HS-FPN, the HS-FPN one starting from the FPN one's weights
  (:func:`hsfpn.torchvision.load_fpn_weights`): training s/iter and its ratio (target at most 1.3x; the paper's
  FLOPs ratio is 1.24x), the loss over a few steps on one synthetic batch (finite and decreasing), then
  eval-mode boxes (finite, inside the image). Only where torchvision's compiled ops load.

``--quick``: tiny sizes on the CPU (what CI runs, so the script cannot rot). Where torchvision's compiled ops do
not load (a CPU torch beside the index's CUDA torchvision), ``--quick`` runs the detector with a pure-torch NMS
stand-in, said so in the table; the GPU run never does. Exit status 1 when a correctness check fails (a
non-finite or non-decreasing loss, non-finite boxes, a GPU/CPU difference above 1e-3 of the outputs' size).

Usage::

    python benchmarks/gpu_suite.py            # on a GPU
    python benchmarks/gpu_suite.py --quick    # CPU smoke run, tiny sizes
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import torch  # noqa: E402
import torch._dynamo  # noqa: E402
from torch import nn  # noqa: E402

import bench_neck  # noqa: E402


@dataclass(frozen=True)
class Settings:
    """Sizes of one run of the suite."""

    device: str
    size: int  # neck: image side (maps at size / 4 .. size / 32)
    batch: int
    warmup: int
    repeats: int
    detector_backbone: str
    detector_size: int
    train_steps: int
    timed_iters: int


FULL = dict(size=800, batch=2, warmup=3, repeats=10, detector_backbone="resnet50", detector_size=800, train_steps=10,
            timed_iters=10)
QUICK = dict(size=64, batch=2, warmup=1, repeats=1, detector_backbone="resnet18", detector_size=128, train_steps=8,
             timed_iters=1)


@dataclass
class Table:
    """The rows of the printed table and whether every correctness check held."""

    rows: list[tuple[str, ...]] = field(default_factory=list)
    ok: bool = True

    def add(self, *cells: str) -> None:
        self.rows.append(cells)

    def check(self, holds: bool) -> str:
        self.ok &= holds
        return "yes" if holds else "NO"

    def markdown(self) -> str:
        head = ("part", "setting", "FPN", "HS-FPN", "HS-FPN / FPN", "target")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row + ("",) * (len(head) - len(row))) + " |" for row in self.rows]
        return "\n".join(lines)


def neck_rows(s: Settings, table: Table) -> None:
    """HS-FPN against FPN: forward, forward+backward, fp32 and bf16 autocast (bench_neck's measurement)."""
    precisions = ("fp32", "bf16")
    part = f"neck {s.size}x{s.size}, batch {s.batch}"
    for dtype in precisions:
        for mode, label in (("fwd", "forward"), ("fwdbwd", "forward+backward")):
            r = {neck: bench_neck.worker(neck, s.batch, s.size, s.device, dtype, mode, s.repeats, s.warmup)
                 for neck in ("FPN", "HSFPN")}
            fpn, hs = r["FPN"], r["HSFPN"]
            ratio = hs["s"] / fpn["s"]
            target = ""
            if mode == "fwdbwd" and dtype == "bf16":
                target = f"<= 2x: {'met' if ratio <= 2 else 'missed'}"
            table.add(part, f"{label}, {dtype}", f"{1e3 * fpn['s']:.1f} ms, {fpn['mib']:.0f} MiB",
                      f"{1e3 * hs['s']:.1f} ms, {hs['mib']:.0f} MiB",
                      f"{ratio:.2f}x time, {hs['mib'] / max(fpn['mib'], 1e-9):.2f}x memory", target)


def gpu_vs_cpu_row(s: Settings, table: Table) -> None:
    """Largest |device - CPU| of the neck's outputs in fp32 (TF32 off on CUDA), against the outputs' size."""
    module = bench_neck.build_neck("HSFPN").eval()
    inputs = bench_neck.make_inputs(s.batch, s.size, "cpu")
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            cpu = module(inputs)
            dev = module.to(s.device)([t.to(s.device) for t in inputs])
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    diff = max(float((a.cpu() - b).abs().max()) for a, b in zip(dev, cpu))
    scale = max(float(b.abs().max()) for b in cpu)
    holds = math.isfinite(diff) and diff <= 1e-3 * scale
    what = "GPU vs CPU" if s.device != "cpu" else "CPU vs CPU (no GPU)"
    table.add(what, "neck outputs, fp32, TF32 off", "", f"max abs diff {diff:.2e} (max abs output {scale:.2f})",
              "", f"<= 1e-3 x output: {table.check(holds)}")


def greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """torchvision's ``nms`` in plain torch (quadratic): keep the best box, drop those above the IoU, repeat."""
    from hsfpn.torchvision import load_torchvision

    box_iou = load_torchvision().ops.box_iou
    order = torch.argsort(scores, descending=True, stable=True)
    over = box_iou(boxes[order], boxes[order]) > iou_threshold
    removed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):
        if not removed[i]:
            keep.append(i)
            removed |= over[i]
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def synthetic_batch(s: Settings, seed: int = 0):
    """Images of noise with bright boxes of two classes, and their targets."""
    g = torch.Generator().manual_seed(seed)
    side = s.detector_size
    images, targets = [], []
    for _ in range(s.batch):
        image = 0.2 * torch.rand(3, side, side, generator=g)
        boxes, labels = [], []
        for k in range(4):
            w, h = (torch.randint(side // 10, side // 4, (2,), generator=g)).tolist()
            x = int(torch.randint(0, side - w, (1,), generator=g))
            y = int(torch.randint(0, side - h, (1,), generator=g))
            label = 1 + k % 2
            image[label - 1, y:y + h, x:x + w] = 1.0
            boxes.append([x, y, x + w, y + h])
            labels.append(label)
        images.append(image.to(s.device))
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32, device=s.device),
                        "labels": torch.tensor(labels, device=s.device)})
    return images, targets


def build_detectors(s: Settings):
    """Faster R-CNN with FPN and with HS-FPN, the second starting from the first's weights."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    from hsfpn.torchvision import load_fpn_weights, resnet_hsfpn_backbone

    # torchvision's choice without pretrained weights: BatchNorm, every layer trainable.
    common = dict(backbone_name=s.detector_backbone, weights=None, norm_layer=nn.BatchNorm2d, trainable_layers=5)
    sizes = dict(num_classes=3, min_size=s.detector_size, max_size=s.detector_size, box_score_thresh=0.0)
    if s.device == "cpu":  # fewer proposals: the CPU run is a smoke test (and may use the quadratic NMS)
        sizes.update(rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=50, rpn_pre_nms_top_n_test=100,
                     rpn_post_nms_top_n_test=25, box_batch_size_per_image=16)
    torch.manual_seed(0)
    fpn = FasterRCNN(resnet_fpn_backbone(**common), **sizes)
    hsfpn = FasterRCNN(resnet_hsfpn_backbone(**common), **sizes)
    load_fpn_weights(hsfpn, fpn.state_dict())
    return {"FPN": fpn.to(s.device), "HS-FPN": hsfpn.to(s.device)}


def train_and_eval(model: nn.Module, s: Settings) -> dict:
    """Losses of ``train_steps`` SGD steps on one batch, s/iter of ``timed_iters`` more, then eval boxes."""
    images, targets = synthetic_batch(s)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.005, momentum=0.9,
                                weight_decay=1e-4)
    torch.manual_seed(1)  # the RPN's and the box head's samplers draw the same way for both models
    model.train()

    def step() -> float:
        loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    losses = [step() for _ in range(s.train_steps)]
    times = []
    for _ in range(s.timed_iters):
        sync(s.device)
        start = time.perf_counter()
        step()
        sync(s.device)
        times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        detections = model(images)
    return {"losses": losses, "s_iter": statistics.median(times), "detections": detections}


def detector_rows(s: Settings, table: Table) -> None:
    from hsfpn.torchvision import compiled_ops_status, load_torchvision

    torchvision = load_torchvision()
    part = f"Faster R-CNN {s.detector_backbone}, {s.detector_size}x{s.detector_size}, batch {s.batch}"
    status = compiled_ops_status()
    if status is not None:
        if s.device != "cpu" or not QUICK_STAND_IN:
            table.add(part, "not run", "", "", "", status)
            return
        # --quick only: the same detectors with a plain-torch NMS; roi_align takes its own Python path, run
        # eagerly (torchvision compiles it on first use, a minute of C++ compilation on a CPU).
        torchvision.ops.boxes.nms = greedy_nms
        torch._dynamo.config.disable = True
        part += " (nms: plain-torch stand-in, compiled ops do not load)"
    results = {name: train_and_eval(model, s) for name, model in build_detectors(s).items()}
    fpn, hs = results["FPN"], results["HS-FPN"]
    ratio = hs["s_iter"] / fpn["s_iter"]
    table.add(part, "train s/iter", f"{fpn['s_iter']:.3f}", f"{hs['s_iter']:.3f}", f"{ratio:.2f}x",
              f"<= 1.3x: {'met' if ratio <= 1.3 else 'missed'}")
    cells = []
    for r in (fpn, hs):
        # The samplers draw new anchors and proposals each step: compare the means of three steps.
        first, last = r["losses"][:3], r["losses"][-3:]
        good = all(math.isfinite(v) for v in r["losses"]) and sum(last) < sum(first)
        cells.append(f"{r['losses'][0]:.3f} -> {r['losses'][-1]:.3f}, decreasing: {table.check(good)}")
    table.add(part, f"loss over {s.train_steps} steps", *cells)
    cells = []
    for r in (fpn, hs):
        boxes = [d["boxes"] for d in r["detections"]]
        inside = all(bool(torch.isfinite(b).all()) and bool((b >= 0).all()) and bool((b <= s.detector_size).all())
                     for b in boxes)
        top = max((float(d["scores"].max()) for d in r["detections"] if len(d["scores"])), default=0.0)
        cells.append(f"{'/'.join(str(len(b)) for b in boxes)} boxes, top score {top:.2f}, "
                     f"finite and inside: {table.check(inside and all(len(b) for b in boxes))}")
    table.add(part, "eval boxes per image", *cells)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


QUICK_STAND_IN = False


def main(argv: list[str] | None = None) -> int:
    global QUICK_STAND_IN
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes on the CPU (CI's smoke run)")
    parser.add_argument("--device", default=None, help="cuda (default when present) or cpu")
    args = parser.parse_args(argv)
    device = args.device or ("cpu" if args.quick or not torch.cuda.is_available() else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"no CUDA device visible to torch {torch.__version__}: run with --quick for the CPU smoke run",
              file=sys.stderr)
        return 1
    if device == "cpu" and not args.quick:
        print("the full suite is meant for a GPU: on the CPU run --quick (tiny sizes)", file=sys.stderr)
        return 1
    QUICK_STAND_IN = args.quick
    s = Settings(device=device, **(QUICK if args.quick else FULL))
    card = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    started = time.perf_counter()
    table = Table()
    neck_rows(s, table)
    gpu_vs_cpu_row(s, table)
    try:
        from hsfpn.torchvision import load_torchvision

        tv = load_torchvision()
        tv_line = f"torchvision {tv.__version__}"
    except Exception as exc:  # torchvision is optional here: the neck rows stand alone
        tv_line = f"no torchvision ({exc})"
    else:
        detector_rows(s, table)
    note = " (tiny sizes: the figures show the suite runs, not speeds)" if args.quick else ""
    print(f"HS-FPN GPU suite{' --quick' if args.quick else ''}: {card}, torch {torch.__version__}, {tv_line}, "
          f"{time.perf_counter() - started:.0f} s{note}")
    print(table.markdown())
    return 0 if table.ok else 1


if __name__ == "__main__":
    sys.exit(main())
