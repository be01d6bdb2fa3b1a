"""``hsfpn-repro export``: the HS-FPN neck, or a torchvision ResNet backbone with HS-FPN, as an ONNX graph checked in
onnxruntime (:mod:`hsfpn.export`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import csv_list, domain_errors, group, usage_error

app = group()

RESNET50_CHANNELS = "256,512,1024,2048"


@app.command(
    "export",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-repro export --neck-only --size 800 --out hsfpn_neck.onnx\n\n"
        "  hsfpn-repro export --neck-only --in-channels 64,128,256,512 --out-channels 64 --size 803,797 "
        "--weights neck.pth --out neck.onnx\n\n"
        "  hsfpn-repro export --backbone resnet50 --resnet-weights resnet50-0676ba61.pth --size 800 "
        "--out r50_hsfpn.onnx\n\n"
        "  hsfpn-repro export --backbone resnet50 --weights faster_rcnn_hsfpn.pth --size 1024 --out model.onnx\n\n"
        "  hsfpn-repro export --backbone resnet50 --fpn --size 800 --out r50_fpn.onnx"
    ),
)
def export_command(
    *,
    out: Annotated[Path, typer.Option("--out", help="The .onnx file to write (weights inside it).")],
    neck_only: Annotated[
        bool, typer.Option("--neck-only", help="Export hsfpn.nn.HSFPN alone: inputs c2.., outputs p2..")
    ] = False,
    backbone: Annotated[
        Optional[str],
        typer.Option("--backbone", help="Export a torchvision ResNet with HS-FPN (resnet18, resnet50, ...): input "
                     "images, outputs named as torchvision's ('0'..'3', 'pool')."),
    ] = None,
    size: Annotated[
        str, typer.Option("--size", help="Image size the graph is fixed to: H,W or one side for a square.")
    ] = "800",
    batch: Annotated[int, typer.Option("--batch", help="Batch of the check (the graph takes any batch).")] = 1,
    static_batch: Annotated[
        bool, typer.Option("--static-batch", help="Fix the batch dimension to --batch too.")
    ] = False,
    weights: Annotated[
        Optional[Path],
        typer.Option("--weights", help="State dict of the exported module, or a detector checkpoint holding it "
                     "under neck., backbone. or backbone.fpn. (torchvision FPN names are renamed). Default: random."),
    ] = None,
    resnet_weights: Annotated[
        Optional[Path],
        typer.Option("--resnet-weights", help="With --backbone: the ResNet's own state dict (e.g. ImageNet)."),
    ] = None,
    in_channels: Annotated[
        str, typer.Option("--in-channels", help="With --neck-only: channels of C2..C5.")
    ] = RESNET50_CHANNELS,
    out_channels: Annotated[int, typer.Option("--out-channels", help="Channels of the outputs.")] = 256,
    num_outs: Annotated[
        int, typer.Option("--num-outs", help="With --neck-only: outputs (extra levels by max-pool).")
    ] = 5,
    returned_layers: Annotated[
        str, typer.Option("--returned-layers", help="With --backbone: ResNet stages feeding the neck.")
    ] = "1,2,3,4",
    alpha: Annotated[float, typer.Option("--alpha", help="HFP's high-pass cutoff (ratio) on both axes.")] = 0.25,
    channel_path: Annotated[bool, typer.Option("--channel-path/--no-channel-path", help="HFP's channel path.")] = True,
    spatial_path: Annotated[bool, typer.Option("--spatial-path/--no-spatial-path", help="HFP's spatial path.")] = True,
    sdp: Annotated[bool, typer.Option("--sdp/--no-sdp", help="The SDP modules.")] = True,
    fpn: Annotated[bool, typer.Option("--fpn", help="Every HS-FPN switch off: the plain FPN (a baseline).")] = False,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Largest accepted |onnxruntime - torch| on the check.")
    ] = 1e-4,
) -> None:
    """Export HS-FPN to ONNX for one input size; written only when onnxruntime's outputs equal torch's."""
    if neck_only == (backbone is not None):
        raise usage_error("give exactly one of --neck-only and --backbone NAME")
    sides = csv_list(size, "--size", int)
    if not sides or len(sides) > 2 or min(sides) < 32:
        raise usage_error(f"--size: expected H,W or one side, each at least 32, got {size!r}")
    height, width = sides[0], sides[-1]
    if batch < 1:
        raise usage_error(f"--batch must be at least 1, got {batch}")
    if neck_only and resnet_weights is not None:
        raise usage_error("--resnet-weights goes with --backbone")
    switches = dict(ratio=(alpha, alpha), channel_path=channel_path and not fpn,
                    spatial_path=spatial_path and not fpn, sdp=sdp and not fpn)

    from hsfpn.export import export_backbone, export_neck, load_weights

    with domain_errors():
        if neck_only:
            from hsfpn.errors import HSFPNError
            from hsfpn.nn import HSFPN

            try:
                module = HSFPN(csv_list(in_channels, "--in-channels", int), out_channels, num_outs, **switches)
            except ValueError as exc:
                raise HSFPNError(str(exc)) from None
            prefixes = ("", "neck.", "backbone.fpn.", "fpn.")
        else:
            from hsfpn.torchvision import resnet_hsfpn_backbone

            module = resnet_hsfpn_backbone(
                backbone_name=backbone, weights=resnet_weights, out_channels=out_channels,
                returned_layers=csv_list(returned_layers, "--returned-layers", int), **switches,
            )
            prefixes = ("", "backbone.")
        loaded = "random weights"
        if weights is not None:
            prefix = load_weights(module, weights, prefixes)
            loaded = f"weights of {weights}" + (f" (under '{prefix}')" if prefix else "")
        export = export_neck if neck_only else export_backbone
        report = export(module, height, width, out, batch=batch, dynamic_batch=not static_batch,
                        tolerance=tolerance)
    what = "HS-FPN neck" if neck_only else f"{backbone} + HS-FPN backbone"
    if fpn or not (channel_path or spatial_path or sdp):
        what = what.replace("HS-FPN", "FPN")
    typer.echo(f"{report.path}: {what}, {loaded}, opset {report.opset}, {report.size_bytes / 2**20:.1f} MiB, "
               f"exported in {report.export_seconds:.1f} s")
    for name, shape in report.inputs:
        typer.echo(f"  input  {name}: {' x '.join(map(str, shape))}")
    for check in report.outputs:
        shape = check.shape if static_batch else ("batch", *check.shape[1:])
        typer.echo(f"  output {check.name}: {' x '.join(map(str, shape))}  "
                   f"max |onnxruntime - torch| {check.max_abs_diff:.2e}")
    typer.echo(f"the graph takes {height} x {width} inputs only (export again for another size), "
               + ("batch " + str(batch) if static_batch else "any batch"))
