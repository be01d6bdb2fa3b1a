"""Tests of pipelines.visualize.image_dct and .scr and `hsfpn-repro analyze scr`: equation 1 by hand, the DCT filter
against scipy and HS-FPN's DCTHighPass, every object's fate, and the real DOTA sample."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from typer.testing import CliRunner

import cli
from dotamini10.png import encode_png
from pipelines.visualize import VisualizeError
from pipelines.visualize.image_dct import dct_matrix, high_pass, zero_low_corner
from pipelines.visualize.scr import (
    SCRCurve,
    SCRGeometry,
    analyze_scr,
    claim_verdict,
    filtered_neighbourhoods,
    parse_ranges,
    region_stats,
)


def reference_zero_corner(x: np.ndarray, k: int) -> np.ndarray:
    """scipy's orthonormal 2-D DCT-II with the top-left k x k coefficients zeroed, transformed back."""
    coeffs = scipy.fft.dctn(x, norm="ortho")
    coeffs[:k, :k] = 0.0
    return scipy.fft.idctn(coeffs, norm="ortho")


# ---------------------------------------------------------------------------------------------
# the DCT filter
# ---------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=24),
                    elements=st.floats(-300, 300)), data=st.data())  # fmt: skip
def test_zeroing_the_corner_equals_scipy(x: np.ndarray, data: st.DataObject):
    k = data.draw(st.integers(0, min(x.shape)))
    np.testing.assert_allclose(zero_low_corner(x, k), reference_zero_corner(x, k), rtol=0, atol=1e-9)


def test_dct_matrix_is_orthonormal_and_equals_scipy():
    b = dct_matrix(7, 7)
    np.testing.assert_allclose(b @ b.T, np.eye(7), atol=1e-12)
    np.testing.assert_allclose(b, scipy.fft.dct(np.eye(7), norm="ortho", axis=0), atol=1e-12)


def test_high_pass_equals_hsfpn_dct_high_pass():
    import torch

    from hsfpn.nn import DCTHighPass

    x = np.random.default_rng(0).normal(size=(25, 38))
    for alpha in (0.0, 0.25, 0.5, 1.0):
        expected = DCTHighPass((alpha, alpha))(torch.from_numpy(x).float()).double().numpy()
        np.testing.assert_allclose(high_pass(x, alpha), expected, atol=1e-4)
    assert (high_pass(x, 1.0) == 0).all()  # exactly, as the module
    assert (high_pass(x, 0.0) == x).all()


# ---------------------------------------------------------------------------------------------
# equation 1 by hand
# ---------------------------------------------------------------------------------------------


def checkerboard_square(side: int = 80, value: float = 250.0) -> np.ndarray:
    """A 50 +- 10 checkerboard with a 4 x 4 square of ``value`` at its centre."""
    yy, xx = np.indices((side, side))
    img = np.where((yy + xx) % 2 == 0, 60.0, 40.0)
    c = side // 2
    img[c - 2:c + 2, c - 2:c + 2] = value
    return img


def test_scr_of_a_bright_square_by_hand():
    # Target region 40 x 40: 16 pixels of 250 and 1,584 checkerboard pixels of mean 50 (each parity once per
    # pair), so mu_t = 50 + 16 * 200 / 1600 = 52. The ring (80^2 - 40^2 = 4,800 checkerboard pixels, half 60 and
    # half 40) has mu_b = 50 and sigma_b = 10. SCR = |52 - 50| / 10 = 0.2.
    scr, mu_t, mu_b, sigma_b = region_stats(checkerboard_square(), 40)
    assert (float(mu_t), float(mu_b), float(sigma_b)) == pytest.approx((52.0, 50.0, 10.0), abs=1e-12)
    assert float(scr) == pytest.approx(0.2, abs=1e-12)


def test_flat_background_is_undefined_and_dc_removal_changes_nothing():
    img = np.full((80, 80), 30.0)
    # A bright 4 x 4 square on a flat background, off the centre (a centred one has no odd DCT terms).
    img[37:41, 41:45] = 230.0
    scr, mu_t, mu_b, sigma_b = region_stats(img, 40)
    assert np.isnan(scr) and float(sigma_b) == 0.0 and float(mu_t) == pytest.approx(30 + 16 * 200 / 1600)
    # In one 80 px window: zeroing DCT[0, 0] subtracts the mean; the ring stays flat, the SCR undefined.
    geometry = SCRGeometry(target=40, background=80, window=80)
    squares = filtered_neighbourhoods(img, np.array([[40, 40]]), (0, 1, 2, 10), geometry)
    stats = region_stats(squares, 40)[0][0]
    assert np.isnan(stats[0]) and np.isnan(stats[1])
    # From k = 2 the filter's ripples make the ring vary: the SCR is defined, and equals scipy's filtering.
    for j, k in ((2, 2), (3, 10)):
        expected = region_stats(reference_zero_corner(img, k), 40)[0]
        assert float(stats[j]) == pytest.approx(float(expected), rel=1e-9)


def test_checkerboard_scr_survives_dc_removal():
    geometry = SCRGeometry(target=40, background=80, window=80)
    squares = filtered_neighbourhoods(checkerboard_square(), np.array([[40, 40]]), (0, 1), geometry)
    scr = region_stats(squares, 40)[0][0]
    assert scr[0] == pytest.approx(0.2, abs=1e-12) and scr[1] == pytest.approx(0.2, abs=1e-9)


def test_windows_shift_inward_at_the_image_edge_and_regions_stay_centred():
    rng = np.random.default_rng(1)
    gray = rng.normal(100, 20, (300, 400))
    geometry = SCRGeometry(target=40, background=80, window=200)
    centre = np.array([[45, 250]])  # 45 px from the left edge: the window starts at column 0
    squares = filtered_neighbourhoods(gray, centre, (0, 7), geometry)
    np.testing.assert_array_equal(squares[0, 0], gray[210:290, 5:85])
    # The 200 px window centred on row 250 would end at row 350: it is shifted up to rows 100-300.
    expected = reference_zero_corner(gray[100:300, 0:200], 7)[110:190, 5:85]
    np.testing.assert_allclose(squares[0, 1], expected, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# the claim
# ---------------------------------------------------------------------------------------------


def curves(medians: list[float]) -> list[SCRCurve]:
    return [SCRCurve(k, 1, m, m, m) for k, m in zip((0, 1, 10, 50, 100), medians, strict=False)]


@pytest.mark.parametrize(("medians", "holds", "peak"), [
    ([1.0, 1.0, 2.0, 0.5], True, 10),        # rises, then falls
    ([2.0, 2.0, 1.0, 0.5], False, 0),        # only falls
    ([1.0, 1.0 + 1e-13, 0.5, 0.2], False, 0),  # k = 1 equals k = 0 up to rounding: no rise
    ([1.0, 1.5, 2.0, 3.0], False, 50),       # only rises
])  # fmt: skip
def test_claim_verdict(medians: list[float], holds: bool, peak: int):
    table = np.asarray([medians])
    verdict = claim_verdict(table, curves(medians))
    assert (verdict.holds, verdict.peak_k, verdict.objects_rise_fall, verdict.objects) == (holds, peak, int(holds), 1)


def test_bad_ranges_and_geometry_are_one_line_errors():
    geometry = SCRGeometry()
    assert parse_ranges("0, 1,10,50,100", geometry) == (0, 1, 10, 50, 100)
    for text, message in (("0,a", "integers"), ("10,1", "increasing"), ("0,600", "reaches the 512 px")):
        with pytest.raises(VisualizeError, match=message):
            parse_ranges(text, geometry)
    with pytest.raises(VisualizeError, match="target < background <= window"):
        SCRGeometry(target=40, background=40, window=512)
    with pytest.raises(VisualizeError, match="even sides"):
        SCRGeometry(target=41)


# ---------------------------------------------------------------------------------------------
# DOTA folders: every object's fate, outputs, the command
# ---------------------------------------------------------------------------------------------


def box_line(x: float, y: float, w: float, h: float, category: str = "small-vehicle") -> str:
    return f"{x} {y} {x + w} {y} {x + w} {y + h} {x} {y + h} {category} 0"


@pytest.fixture()
def dota_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    root = tmp_path / "dota"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    image = np.clip(rng.normal(100, 8, (300, 360, 3)), 0, 255).astype(np.uint8)
    tiny = [(100, 100, 8, 6), (200, 150, 10, 10), (250, 80, 12, 4)]
    for x, y, w, h in tiny:
        image[y:y + h, x:x + w] = 240
    (root / "images" / "s1.png").write_bytes(encode_png(image, channels="rgb"))
    lines = ["imagesource:synthetic", "gsd:1"] + [box_line(*b) for b in tiny] + [
        box_line(150, 200, 40, 30, "plane"),  # not tiny: sqrt(1200) = 34.6
        box_line(10, 140, 6, 6),              # its 80 px background square leaves the image
        box_line(60, 240, 5, 5, "ship"),      # another class (with --classes small-vehicle)
        "1 2 3 4 small-vehicle",               # malformed
    ]  # fmt: skip
    (root / "labelTxt" / "s1.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "labelTxt" / "lost.txt").write_text(box_line(5, 5, 4, 4) + "\n", encoding="utf-8")  # no image
    return root


def test_every_object_has_a_fate_and_scr_rows_are_complete(dota_folder: Path, tmp_path: Path):
    result = analyze_scr(dota_folder, tmp_path / "out", classes=["small-vehicle", "plane"],
                         geometry=SCRGeometry(window=256))  # fmt: skip
    assert result.fates == {"measured": 3, "invalid": 1, "other_class": 1, "not_tiny": 1, "near_border": 1,
                            "image_too_small": 0, "no_image": 1}  # fmt: skip
    rows = result.scr_csv.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "image,line,category,size_px,cx,cy,k,scr,mu_t,mu_b,sigma_b"
    assert len(rows) == 1 + 3 * 5  # one row per measured object and range
    objects = result.objects_csv.read_text(encoding="utf-8").splitlines()
    assert len(objects) == 1 + 8  # every object line of both label files
    assert "lost,1,small-vehicle,4.0,no_image" in objects
    summary = json.loads(result.summary_json.read_text(encoding="utf-8"))
    assert summary["geometry"] == {"target": 40, "background": 80, "window": 256}
    assert summary["verdict_text"] == result.verdict.describe(result.curves)
    assert result.problems == (f"{dota_folder / 'labelTxt' / 'lost.txt'}: label file without an image, its "
                               "objects are not measured",)  # fmt: skip
    # The first tiny object: 8 x 6 px, centre (104, 103); k = 0 values equal equation 1 on the raw gray image.
    first = rows[1].split(",")
    assert first[:7] == ["s1", "3", "small-vehicle", "6.928", "104", "103", "0"]
    width, height = struct.unpack(">II", result.figure.read_bytes()[16:24])
    assert (width, height) == (1280, 440)  # 4.8 + 1.6 x 5 in wide, 4.4 in high, at 100 dpi


def test_scr_at_k0_is_equation_1_on_the_image(dota_folder: Path, tmp_path: Path):
    import cv2

    result = analyze_scr(dota_folder, tmp_path / "out", ranges=(0, 1, 10), geometry=SCRGeometry(window=256))
    rgb = cv2.cvtColor(cv2.imread(str(dota_folder / "images" / "s1.png")), cv2.COLOR_BGR2RGB).astype(float)
    gray = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    row = next(r.split(",") for r in result.scr_csv.read_text(encoding="utf-8").splitlines()[1:]
               if r.split(",")[4:7] == ["205", "155", "0"])  # fmt: skip
    square = gray[155 - 40:155 + 40, 205 - 40:205 + 40]
    target = square[20:60, 20:60]
    ring = np.concatenate([square[:20].ravel(), square[60:].ravel(), square[20:60, :20].ravel(),
                           square[20:60, 60:].ravel()])  # fmt: skip
    assert float(row[7]) == pytest.approx(abs(target.mean() - ring.mean()) / ring.std(), rel=1e-9)


def test_real_dota_sample_accounts_for_every_object(dota_sample: Path, tmp_path: Path):
    result = analyze_scr(dota_sample, tmp_path / "out")
    label_files = sorted((dota_sample / "labelTxt").glob("*.txt"))
    object_lines = sum(1 for f in label_files for line in f.read_text(encoding="utf-8").splitlines()
                       if line.strip() and not line.startswith(("imagesource:", "gsd:")))  # fmt: skip
    assert sum(result.fates.values()) == object_lines
    without_image = [f for f in label_files if not (dota_sample / "images" / f"{f.stem}.png").exists()]
    # "no_image" is the fate of the tiny objects (sqrt(w * h) of the horizontal box < 16 px) of those files.
    def tiny(line: str) -> bool:
        xy = np.array(line.split()[:8], dtype=float).reshape(4, 2)
        w, h = xy.max(axis=0) - xy.min(axis=0)
        return bool(np.sqrt(w * h) < 16)

    assert result.fates["no_image"] == sum(
        tiny(line) for f in without_image for line in f.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith(("imagesource:", "gsd:"))
    )
    assert len(result.problems) == len(without_image) == 5
    assert result.fates["measured"] > 0 and result.images == 2
    assert all(c.defined == result.fates["measured"] for c in result.curves)


def test_cli_prints_the_verdict(dota_folder: Path, tmp_path: Path):
    result = CliRunner().invoke(cli.repro_app, ["analyze", "scr", "--dota-root", str(dota_folder), "--out",
                                                str(tmp_path / "out"), "--window", "256", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "the paper's claim (SCR first rises, then falls)" in result.output
    assert "measured 4" in result.output  # every class: the ship counts too
    bad = CliRunner().invoke(cli.repro_app, ["analyze", "scr", "--dota-root", str(dota_folder), "--out",
                                             str(tmp_path / "out"), "--classes", "tank", "--quiet"])  # fmt: skip
    assert bad.exit_code == 1 and "'tank' is not a DOTA class" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
