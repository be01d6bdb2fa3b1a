"""``hsfpn-repro convert-checkpoint``: the authors' release checkpoints under HSFPN's parameter names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import domain_errors, group

app = group()


@app.command(
    "convert-checkpoint",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-repro convert-checkpoint release_cascade_hsfpn.pth cascade_hsfpn_mmdet3.pth\n\n"
        "  hsfpn-repro convert-checkpoint hs_fpn_neck.pth neck_ours.pth"
    ),
)
def convert_checkpoint_command(
    src: Annotated[Path, typer.Argument(help="Checkpoint saved with the authors' HS-FPN release names.")],
    dst: Annotated[Path, typer.Argument(help="Where to write the converted checkpoint.")],
) -> None:
    """Rename a release HS-FPN checkpoint (detector or bare neck) to HSFPN's names, checked by a strict load."""
    from hsfpn.convert import convert_checkpoint

    with domain_errors():
        report = convert_checkpoint(src, dst)
    cfg = report.neck_config
    typer.echo(
        f"{report.destination}: {report.layout} checkpoint, {report.renamed} neck entries renamed, "
        f"{report.unchanged} kept"
        + (f", dropped {', '.join(report.dropped)}" if report.dropped else "")
    )
    typer.echo(
        f"neck: in_channels={cfg['in_channels']} out_channels={cfg['out_channels']} num_outs>={cfg['num_outs']} "
        f"add_extra_convs={cfg['add_extra_convs']!r} channel_fusion={cfg['channel_fusion']!r}"
    )
