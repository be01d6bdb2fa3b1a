"""Tests of pipelines.visualize.frequencies and `hsfpn-repro visualize frequencies`: the image's own high-pass, and F2 /
P2 maps through a randomly initialised HS-FPN detector saved to a checkpoint by the test."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import cli
from dotamini10.png import encode_png
from pipelines.visualize import VisualizeError
from pipelines.models import build_model, load_model, read_checkpoint, resolve_config
from pipelines.visualize.frequencies import parse_alphas, render_frequencies


def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def write_image(path: Path, height: int, width: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(110, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    image[40:46, 50:56] = 250  # a tiny bright object
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(image, channels="rgb"))
    return path


def test_image_route_numbers_and_figure(tmp_path: Path):
    image = write_image(tmp_path / "img.png", 96, 128)
    result = render_frequencies(image, tmp_path / "out", alphas=(0.0, 0.25, 1.0))
    assert result.source == "image" and [p.name for p in result.figures] == ["frequencies.png"]
    numbers = json.loads(result.numbers[0].read_text(encoding="utf-8"))
    assert numbers["source"] == "image" and numbers["input_size"] == [96, 128]
    gray, a0, a25, a1 = numbers["maps"]
    assert a0["energy_share"] == pytest.approx(1.0) and a0["mean_abs"] == pytest.approx(gray["mean_abs"])
    assert a25["name"] == "alpha 0.25: DCT[:24, :32] of 96 x 128 zeroed"  # int(0.25 * 96), int(0.25 * 128)
    assert 0 < a25["energy_share"] < 1
    assert a1["energy_share"] == 0.0 and a1["mean_abs"] == 0.0
    # Panels: input + 3 maps in rows of 3 -> 2 rows; each 4 in wide (+ 0.6 in), 0.8 x 4 x 96/128 + 0.7 in high.
    assert png_size(result.figures[0]) == (1260, round(100 * (2 * (2.4 + 0.7) + 1.0)))
    again = render_frequencies(image, tmp_path / "again", alphas=(0.0, 0.25, 1.0))
    assert again.figures[0].read_bytes() == result.figures[0].read_bytes()


def test_config_and_checkpoint_go_together(tmp_path: Path):
    image = write_image(tmp_path / "img.png", 64, 64)
    with pytest.raises(VisualizeError, match="go together"):
        render_frequencies(image, tmp_path / "out", config="faster_rcnn")
    result = CliRunner().invoke(cli.repro_app, ["visualize", "frequencies", "--image", str(tmp_path / "none.png"),
                                                "--out", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 1 and "image file not found" in result.output
    assert len(result.output.strip().splitlines()) == 1
    with pytest.raises(VisualizeError, match="distinct values in"):
        parse_alphas("0,1.5")


# ---------------------------------------------------------------------------------------------
# through a checkpoint
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hsfpn_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A randomly initialised Faster R-CNN R-50 with the HS-FPN neck, saved as an mmengine training checkpoint
    (weights plus a message hub with history buffers and numpy values in ``meta``)."""
    import torch
    from mmengine.logging import MessageHub

    model = build_model(resolve_config("faster_rcnn", "hsfpn").cfg).eval()
    hub = MessageHub.get_instance("test_visualize_frequencies")
    hub.update_scalar("train/loss", 0.5)
    path = tmp_path_factory.mktemp("ckpt") / "epoch_1.pth"
    torch.save({"meta": {"epoch": 1, "seed": np.int64(7), "lr": np.float64(0.02)}, "state_dict": model.state_dict(),
                "message_hub": hub.state_dict()}, path)  # fmt: skip
    return path, model


@pytest.mark.slow
def test_checkpoint_route_f2_and_p2_maps(hsfpn_checkpoint: tuple[Path, object], tmp_path: Path):
    import torch

    from hsfpn.nn import DCTHighPass

    path, model = hsfpn_checkpoint
    image = write_image(tmp_path / "img.png", 256, 256)
    result = render_frequencies(image, tmp_path / "out", config="faster_rcnn", checkpoint=path,
                                alphas=(0.0, 0.25, 1.0))  # fmt: skip
    assert result.source == "checkpoint"
    assert [p.name for p in result.figures] == ["frequencies.png", "p2_features.png"]
    freq = json.loads(result.numbers[0].read_text(encoding="utf-8"))
    p2 = json.loads(result.numbers[1].read_text(encoding="utf-8"))["maps"]
    assert list(p2) == ["c2", "after_hfp", "after_hfp_sdp"]
    assert all(m["shape"] == [256, 64, 64] for m in p2.values())  # 256 channels at stride 4
    # Independently: C2 is the first lateral conv on the backbone's C2 of the normalised BGR image.
    rgb = np.asarray(__import__("cv2").imread(str(image)))  # OpenCV reads BGR
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    x = (torch.from_numpy(rgb[..., ::-1].copy()).permute(2, 0, 1)[None].float() - mean) / std  # to RGB
    with torch.no_grad():
        c2 = model.neck.lateral_convs[0](model.backbone(x)[0])
        f2 = DCTHighPass((0.25, 0.25))(c2)
    assert p2["c2"]["mean_abs"] == pytest.approx(float(c2.abs().mean()), rel=1e-5)
    assert freq["maps"][1]["mean_abs"] == pytest.approx(float(f2.abs().mean()), rel=1e-5)
    assert freq["maps"][0]["energy_share"] == pytest.approx(1.0)
    assert freq["maps"][2]["mean_abs"] == 0.0  # alpha 1 blocks everything
    width, height = png_size(result.figures[1])
    assert width == 4 * 400 + 60 and height > 300


@pytest.mark.slow
def test_checkpoints_that_do_not_fit_or_hold_code_are_refused(hsfpn_checkpoint: tuple[Path, object],
                                                               tmp_path: Path):  # fmt: skip
    import torch

    path, model = hsfpn_checkpoint
    fpn = resolve_config("faster_rcnn", "fpn", error=VisualizeError)
    with pytest.raises(VisualizeError, match=r"does not fit config row faster_rcnn: 0 weights missing, \d+ "
                                             r"unexpected \(unexpected neck\.hfps"):
        load_model(fpn, path, error=VisualizeError)

    class Payload:
        def __reduce__(self):
            return (print, ("this must not run",))

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": Payload()}, evil, pickle_module=pickle)
    with pytest.raises(VisualizeError, match="not a readable weights-only checkpoint"):
        read_checkpoint(evil, error=VisualizeError)
    with pytest.raises(VisualizeError, match="no such checkpoint file"):
        read_checkpoint(tmp_path / "missing.pth", error=VisualizeError)


def test_unknown_config_is_a_one_line_error(tmp_path: Path):
    image = write_image(tmp_path / "img.png", 64, 64)
    result = CliRunner().invoke(cli.repro_app, ["visualize", "frequencies", "--image", str(image), "--out",
                                                str(tmp_path / "out"), "--config", "yolo", "--checkpoint",
                                                str(tmp_path / "x.pth")])  # fmt: skip
    assert result.exit_code == 1 and "--config yolo: neither a row id" in result.output
