"""Tests of dotamini10.build: the whole builder on tiny DOTA trees made here, and on the shared sample."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dotamini10.build import BuildOptions, build_dotamini10
from dotamini10.classes import DOTA_V1_0_CLASSES
from dotamini10.errors import DatasetError
from dotamini10.problems import StrictModeError
from dotamini10.write import sha256_file

REPO = Path(__file__).resolve().parent.parent
# Small windows keep every build here to a fraction of a second; the geometry rules do not depend on the size.
SMALL = BuildOptions(crop_size=128, stride=96, scale_mode="fixed", scales=(1.0,))


def box(x0: float, y0: float, x1: float, y1: float, category: str, difficult: int = 0) -> str:
    return f"{x0} {y0} {x1} {y0} {x1} {y1} {x0} {y1} {category} {difficult}"


def write_image(path: Path, width: int, height: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    # Smooth gradients plus a little noise: compresses like a photo, unlike pure noise.
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([(xx * 255 // max(width, 1)), (yy * 255 // max(height, 1)), (xx + yy) % 256], axis=-1)
    image = (image + rng.integers(0, 8, image.shape)).clip(0, 255).astype(np.uint8)
    assert cv2.imwrite(str(path), image)


def make_split(root: Path, images: dict[str, tuple[int, int]], labels: dict[str, list[str]]) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labelTxt").mkdir(parents=True, exist_ok=True)
    for i, (stem, (w, h)) in enumerate(sorted(images.items())):
        write_image(root / "images" / f"{stem}.png", w, h, seed=i)
    for stem, lines in labels.items():
        text = "imagesource:test\ngsd:0.5\n" + "".join(line + "\n" for line in lines)
        (root / "labelTxt" / f"{stem}.txt").write_text(text, encoding="utf-8")
    return root


def small_release(root: Path) -> Path:
    """train: A (300 x 200, hand-checked objects), B (600 x 400, many objects, several units); val: C."""
    rng = np.random.default_rng(1)
    many = []
    for i in range(60):
        x, y = rng.uniform(0, 570), rng.uniform(0, 370)
        w, h = rng.uniform(4, 30, size=2)
        many.append(box(round(x, 1), round(y, 1), round(x + w, 1), round(y + h, 1), DOTA_V1_0_CLASSES[i % 15]))
    make_split(
        root / "train",
        {"A": (300, 200), "B": (600, 400), "D": (100, 100)},
        {
            "A": [
                box(10, 10, 40, 30, "plane"),  # inside window (0, 0) only
                box(120, 50, 140, 60, "ship"),  # 8/20 in window x0=0, whole in x0=96
                box(0, 0, 200, 150, "storage-tank"),  # too big: at most 0.55 inside any window
                box(50, 150, 60, 160, "bridge"),  # not a DOTAmini10 class
                "1 2 3 plane 0",  # invalid line
                box(150, 100, 180, 120, "basketball-court", 1),  # triggers an augmented copy
                box(290, 190, 310, 210, "small-vehicle"),  # reaches outside the 300 x 200 image
            ],
            "B": many,
            "E": [box(1, 1, 5, 5, "plane")],  # label without image
        },
    )
    make_split(root / "val", {"C": (150, 130)}, {"C": [box(5, 5, 15, 15, "helicopter")]})
    return root


def read_outputs(out: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "build.json":
                info = json.loads(data)
                info.pop("runtime")
                data = json.dumps(info).encode()
            files[path.relative_to(out).as_posix()] = data
    return files


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return small_release(tmp_path_factory.mktemp("dota"))


@pytest.fixture(scope="module")
def reference(release, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "out"
    build_dotamini10(out, dota_root=release, options=SMALL, seed=5, workers=1)
    return out


def test_hand_checked_scene(reference):
    coco = json.loads((reference / "annotations" / "train.json").read_text(encoding="utf-8"))
    images = {im["file_name"]: im for im in coco["images"]}
    anns = [a for a in coco["annotations"] if images_by_id(coco)[a["image_id"]]["source"] == "A"]
    # A is 300 x 200: windows at x 0, 96, 172 and y 0, 72.
    a_windows = sorted((im["window"][0], im["window"][1], im["aug_copy"]) for im in images.values() if im["source"] == "A")
    assert {(x, y) for x, y, _ in a_windows} <= {(x, y) for x in (0, 96, 172) for y in (0, 72)}
    plane = [a for a in anns if a["category_id"] == 1]
    assert len(plane) == 1
    assert images_by_id(coco)[plane[0]["image_id"]]["file_name"] == "A__1__0___0.png"
    assert plane[0]["bbox"] == [10, 10, 30, 20] and plane[0]["area"] == 600 and plane[0]["truncated"] is False
    assert plane[0]["segmentation"] == [[10, 10, 40, 10, 40, 30, 10, 30]]

    fates = {(m["image"], m["line"]): m for m in manifest(reference)}
    assert fates[("A", 3)]["windows"] == ["A__1__0___0"]
    assert fates[("A", 4)]["status"] == "kept" and "A__1__0___0" not in fates[("A", 4)]["windows"]
    assert "A__1__96___0" in fates[("A", 4)]["windows"]
    assert (fates[("A", 5)]["status"], fates[("A", 5)]["reason"]) == ("dropped", "iof_below_threshold")
    # 200 x 150 storage tank: at best a full 128 x 128 window inside, 16384 / 30000.
    assert fates[("A", 5)]["best_iof"] == round(128 * 128 / 30000, 4)
    assert (fates[("A", 6)]["status"], fates[("A", 6)]["reason"]) == ("filtered", "class_not_selected")
    assert (fates[("A", 7)]["status"], fates[("A", 7)]["reason"]) == ("invalid", "token_count")
    assert fates[("A", 9)]["problems"] == ["outside_image"] and fates[("A", 9)]["status"] == "kept"
    assert {(m["status"], m["reason"]) for m in manifest(reference) if m["image"] == "E"} == {
        ("invalid", "label_without_image")
    }

    # The basketball court (line 8, x 150..180, y 100..120) has one augmented copy per window holding it.
    court = fates[("A", 8)]
    copies = [w for w in court["windows"] if w.endswith("__aug1")]
    assert copies and len(copies) == len(court["windows"]) // 2
    aug = images[copies[0] + ".png"]
    assert aug["aug_copy"] == 1 and aug["source"] == "A"
    # Its label equals the original window's label after the recorded flips.
    original = images[copies[0].removesuffix("__aug1") + ".png"]
    orig_ann = next(a for a in coco["annotations"] if a["image_id"] == original["id"] and a["category_id"] == 8)
    aug_ann = next(a for a in coco["annotations"] if a["image_id"] == aug["id"] and a["category_id"] == 8)
    ox, oy, w, h = orig_ann["bbox"]
    assert aug_ann["bbox"][2:] == [w, h]
    assert aug_ann["bbox"][0] in (ox, 128 - ox - w) and aug_ann["bbox"][1] in (oy, 128 - oy - h)


def images_by_id(coco: dict) -> dict[int, dict]:
    return {im["id"]: im for im in coco["images"]}


def test_outputs_layout_checksums_and_counts(reference, release):
    info = json.loads((reference / "build.json").read_text(encoding="utf-8"))
    assert set(info) >= {"toolkit_version", "seed", "options", "source", "inputs", "outputs", "counts", "problems"}
    assert info["runtime"] == {"workers": 1}
    assert info["source"]["kind"] == "dota" and info["source"]["splits"] == ["train", "val"]
    assert info["options"]["crop_size"] == 128 and info["options"]["scale_mode"] == "fixed"
    for rel, digest in info["outputs"].items():
        assert sha256_file(reference / rel) == digest
    for rel, digest in info["inputs"].items():
        assert sha256_file(release / rel) == digest
    produced = {p.relative_to(reference).as_posix() for p in reference.rglob("*") if p.is_file()}
    assert produced == set(info["outputs"]) | {"build.json"}
    assert not (reference / ".work").exists()
    for split in ("train", "val"):
        coco = json.loads((reference / "annotations" / f"{split}.json").read_text(encoding="utf-8"))
        assert [c["name"] for c in coco["categories"]][:3] == ["plane", "small-vehicle", "large-vehicle"]
        assert info["counts"][split]["images"] == len(coco["images"])
        assert info["counts"][split]["instances"] == len(coco["annotations"])
        for im in coco["images"]:
            assert (reference / "images" / split / im["file_name"]).is_file()
            label = (reference / "labelTxt" / split / im["file_name"]).with_suffix(".txt")
            n_lines = len(label.read_text(encoding="utf-8").splitlines())
            assert n_lines == sum(a["image_id"] == im["id"] for a in coco["annotations"])
        for ann in coco["annotations"]:
            x, y, w, h = ann["bbox"]
            assert ann["area"] == pytest.approx(w * h) and ann["iscrowd"] == 0
            assert -1e-6 <= x and x + w <= 128 + 1e-6 and -1e-6 <= y and y + h <= 128 + 1e-6
    # val keeps empty windows: C (150 x 130) has windows x 0, 22 and y 0, 2 -> 4 images, one object.
    assert info["counts"]["val"]["images"] == 4
    assert info["problems"] == {"image_without_label": 1, "label_without_image": 1, "outside_image": 1, "token_count": 1}


def test_manifest_accounts_for_every_object(reference, release):
    rows = manifest(reference)
    total_lines = 0
    for label in release.rglob("labelTxt/*.txt"):
        lines = label.read_text(encoding="utf-8").splitlines()
        total_lines += sum(1 for line in lines if line.strip() and not line.startswith(("imagesource", "gsd")))
    assert len(rows) == total_lines
    info = json.loads((reference / "build.json").read_text(encoding="utf-8"))
    for split, counts in info["counts"].items():
        fate = counts["source_objects"]
        assert fate["kept"] + fate["filtered"] + fate["dropped"] + fate["invalid"] == fate["total"]
        assert fate["total"] == sum(r["split"] == split for r in rows)
        # Every annotation is one (object, output image) pair of the manifest.
        assert counts["instances"] == sum(len(r["windows"]) for r in rows if r["split"] == split)


def test_workers_1_and_2_give_identical_bytes(reference, release, tmp_path):
    out = tmp_path / "w2"
    summary = build_dotamini10(out, dota_root=release, options=SMALL, seed=5, workers=2)
    assert summary.shared_images == 1  # B (24 of 34 windows) was cut into units shared by both workers
    assert read_outputs(out) == read_outputs(reference)


@pytest.mark.parametrize("scale_mode", ["random", "fixed"])
def test_identical_bytes_across_workers_and_reruns_at_several_scales(release, tmp_path, scale_mode):
    options = BuildOptions(crop_size=128, stride=96, scale_mode=scale_mode, scales=(0.5, 1.0), aug_copies=2)
    outputs = [
        read_outputs(build_dotamini10(tmp_path / f"{n}-{i}", dota_root=release, options=options, seed=3,
                                      workers=n).out_dir)
        for i, n in enumerate((1, 2, 2))
    ]
    assert outputs[0] == outputs[1] == outputs[2]
    coco = json.loads(outputs[0]["annotations/train.json"])
    scales = {im["scale"] for im in coco["images"]}
    assert scales == {0.5, 1.0} if scale_mode == "fixed" else all(0.5 <= f <= 1.0 for f in scales)
    assert max(im["aug_copy"] for im in coco["images"]) == 2


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("workers", [1, 2])
def test_resume_after_an_interruption_is_byte_identical(reference, release, tmp_path, workers):
    out = tmp_path / "resumed"
    calls = []

    def stop_after_two_units(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:  # the first call reports the starting point, then one per finished unit
            raise Interrupt

    with pytest.raises(Interrupt):
        build_dotamini10(out, dota_root=release, options=SMALL, seed=5, workers=workers,
                         progress=stop_after_two_units)
    assert (out / ".work" / "state.json").is_file()
    assert not (out / "build.json").exists()
    assert any((out / "images" / "train").iterdir())
    summary = build_dotamini10(out, dota_root=release, options=SMALL, seed=5, workers=workers, resume=True)
    assert summary.resumed_images >= 1 or workers == 2
    assert read_outputs(out) == read_outputs(reference)


def test_killed_build_resumes_to_identical_output(tmp_path):
    # A real kill: SIGKILL a build process once windows appear, then resume; compare with a clean build.
    root = make_split(tmp_path / "src", {"big": (1600, 1200)},
                      {"big": [box(x, y, x + 12, y + 9, "small-vehicle") for x in range(5, 1580, 37)
                               for y in range(5, 1180, 53)]})
    options = BuildOptions(crop_size=128, stride=96, scale_mode="fixed", scales=(1.0,), png_compression=2)
    out = tmp_path / "killed"
    script = (
        "import sys; from pathlib import Path; from dotamini10.build import BuildOptions, build_dotamini10; "
        "build_dotamini10(Path(sys.argv[1]), dota_root=Path(sys.argv[2]), workers=1, options=BuildOptions("
        "crop_size=128, stride=96, scale_mode='fixed', scales=(1.0,), png_compression=2))"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(out), str(root)], cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        folder = out / "images" / "train"
        if folder.is_dir() and sum(1 for _ in folder.iterdir()) >= 20:
            break
        time.sleep(0.01)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed, "the build finished before it could be killed"
    assert not (out / "build.json").exists()
    build_dotamini10(out, dota_root=root, workers=2, options=options, resume=True)
    clean = tmp_path / "clean"
    build_dotamini10(clean, dota_root=root, workers=1, options=options)
    assert read_outputs(out) == read_outputs(clean)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked only on Linux")
def test_fork_is_ruled_out_by_other_threads_and_threaded_libraries():
    def probe(setup: str) -> str:
        code = f"{setup}; from dotamini10.pool import fork_is_safe; print(fork_is_safe())"
        return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()

    assert probe("pass") == "True"
    assert probe("import cv2") == "False"
    sleeper = "import threading, time; threading.Thread(target=time.sleep, args=(5,), daemon=True).start()"
    assert probe(sleeper) == "False"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked only on Linux")
def test_workers_forked_from_a_clean_process_give_the_same_bytes(reference, release, tmp_path):
    # A fresh interpreter without OpenCV or torch forks its workers directly, as the command line does; this
    # test session has loaded both, so the other builds here start their workers from the fork server.
    out = tmp_path / "forked"
    script = (
        "import sys; from pathlib import Path; "
        "from dotamini10.build import BuildOptions, build_dotamini10; from dotamini10.pool import fork_is_safe; "
        "assert fork_is_safe(); "
        "s = build_dotamini10(Path(sys.argv[1]), dota_root=Path(sys.argv[2]), seed=5, workers=2, "
        "options=BuildOptions(crop_size=128, stride=96, scale_mode='fixed', scales=(1.0,))); "
        "assert s.shared_images == 1"
    )
    subprocess.run([sys.executable, "-c", script, str(out), str(release)], cwd=REPO, check=True)
    assert read_outputs(out) == read_outputs(reference)


def test_existing_output_needs_resume_or_overwrite(reference, release, tmp_path):
    out = tmp_path / "o"
    build_dotamini10(out, dota_root=release / "val", options=SMALL)
    with pytest.raises(DatasetError, match="--resume .* or --overwrite"):
        build_dotamini10(out, dota_root=release / "val", options=SMALL)
    summary = build_dotamini10(out, dota_root=release / "val", options=SMALL, resume=True)
    assert summary.already_complete
    with pytest.raises(DatasetError, match="other options"):
        build_dotamini10(out, dota_root=release / "val", options=SMALL, seed=9, resume=True)
    build_dotamini10(out, dota_root=release, options=SMALL, seed=5, overwrite=True)
    assert read_outputs(out) == read_outputs(reference)


def test_resume_with_other_options_is_refused(release, tmp_path):
    out = tmp_path / "o"

    def interrupt(done: int, total: int) -> None:
        if done:
            raise Interrupt

    with pytest.raises(Interrupt):
        build_dotamini10(out, dota_root=release, options=SMALL, progress=interrupt)
    with pytest.raises(DatasetError, match="used other options"):
        build_dotamini10(out, dota_root=release, options=BuildOptions(crop_size=128, stride=64), resume=True)


def test_strict_mode_stops_with_file_and_line(release, tmp_path):
    with pytest.raises(StrictModeError, match=r"^train/labelTxt/A\.txt:7: token_count"):
        build_dotamini10(tmp_path / "o", dota_root=release, options=BuildOptions(strict=True, crop_size=128, stride=96))


def test_shared_sample_builds_and_reports_the_missing_images(dota_sample, tmp_path):
    out = tmp_path / "sample"
    summary = build_dotamini10(out, dota_root=dota_sample, workers=1)
    problems = [json.loads(line) for line in (out / "problems.jsonl").read_text(encoding="utf-8").splitlines()]
    missing = sorted(p["file"] for p in problems if p["reason"] == "label_without_image")
    assert missing == [f"labelTxt/{s}.txt" for s in ("P0770", "P1088", "P1234", "P2598", "P2709")]
    rows = manifest(out)
    for stem in ("P0770", "P1088", "P1234", "P2598", "P2709"):
        text = (dota_sample / "labelTxt" / f"{stem}.txt").read_text(encoding="utf-8").splitlines()
        n = sum(1 for line in text if line.strip() and ":" not in line)
        assert sum(r["image"] == stem and r["reason"] == "label_without_image" for r in rows) == n
    assert summary.counts["train"]["source_images"] == 2
    coco = json.loads((out / "annotations" / "train.json").read_text(encoding="utf-8"))
    assert {im["source"] for im in coco["images"]} == {"P0706", "P1888"}
    assert summary.counts["train"]["instances"] == len(coco["annotations"]) > 500


@pytest.mark.parametrize("workers", [1, 2])  # with 2 workers each image is shared (decoded by a PrepareTask)
def test_broken_images_are_reported_and_their_objects_invalid(tmp_path, workers):
    root = make_split(tmp_path / "src", {"good": (200, 150), "trunc": (200, 150), "corrupt": (200, 150)},
                      {s: [box(10, 10, 30, 30, "plane")] for s in ("good", "trunc", "corrupt")})
    data = (root / "images" / "trunc.png").read_bytes()
    (root / "images" / "trunc.png").write_bytes(data[: len(data) // 2])
    data = bytearray((root / "images" / "corrupt.png").read_bytes())
    start = data.index(b"IDAT") + 4
    data[start : start + 16] = b"\x00" * 16
    (root / "images" / "corrupt.png").write_bytes(bytes(data))
    summary = build_dotamini10(tmp_path / "o", dota_root=root, options=SMALL, workers=workers)
    assert summary.problems == {"truncated_image": 1, "unreadable_image": 1}
    assert summary.counts["train"]["source_images"] == 1
    assert summary.counts["train"]["images"] == 1  # good.png: 4 windows, one holds the plane
    assert summary.shared_images == (workers == 2)  # good.png; corrupt.png failed in its shared decode
    fates = {r["image"]: (r["status"], r["reason"]) for r in manifest(tmp_path / "o")}
    assert fates == {"good": ("kept", None), "trunc": ("invalid", "truncated_image"),
                     "corrupt": ("invalid", "unreadable_image")}


def test_a_shared_decode_failing_late_leaves_no_windows_behind(tmp_path):
    # One image alone, so with 2 workers it is shared and its windows are split while it decodes; its last
    # compressed chunk is damaged, so the decode fails after most rows were published.
    root = make_split(tmp_path / "src", {"late": (2000, 1500)}, {"late": [box(100, 100, 140, 130, "plane")]})
    data = bytearray((root / "images" / "late.png").read_bytes())
    last = data.rindex(b"IDAT")
    data[last + 8] ^= 0xFF  # inside the last IDAT chunk: its CRC no longer matches, for libpng too
    (root / "images" / "late.png").write_bytes(bytes(data))
    options = BuildOptions(scale_mode="fixed", scales=(1.0,), drop_empty_train=False)
    summary = build_dotamini10(tmp_path / "o", dota_root=root, options=options, workers=2)
    assert summary.problems == {"unreadable_image": 1}
    assert summary.shared_images == 0 and summary.counts["train"]["images"] == 0
    assert list((tmp_path / "o" / "images" / "train").iterdir()) == []
    assert list((tmp_path / "o" / "labelTxt" / "train").iterdir()) == []
    assert [(r["status"], r["reason"]) for r in manifest(tmp_path / "o")] == [("invalid", "unreadable_image")]


scene = st.lists(
    st.one_of(
        st.tuples(st.floats(-20, 260), st.floats(-20, 200), st.floats(1, 140), st.floats(1, 90),
                  st.sampled_from(DOTA_V1_0_CLASSES)),
        st.sampled_from(["1 2 3 plane", "a b c d e f g h ship 0", "0 0 5 5 0 5 5 0 plane 0", "1 1 2 2 3 3 4 4 ship"]),
    ),
    max_size=30,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=scene, size=st.tuples(st.integers(40, 260), st.integers(40, 200)), mode=st.sampled_from(["fixed", "random"]))
def test_accounting_holds_for_any_scene(objects, size, mode):
    lines = [o if isinstance(o, str) else box(round(o[0], 2), round(o[1], 2), round(o[0] + o[2], 2),
                                               round(o[1] + o[3], 2), o[4]) for o in objects]
    with tempfile.TemporaryDirectory() as tmp:
        root = make_split(Path(tmp) / "src", {"s": size}, {"s": lines})
        out = Path(tmp) / "out"
        summary = build_dotamini10(out, dota_root=root, options=BuildOptions(
            crop_size=96, stride=64, scale_mode=mode, scales=(0.5, 1.0)))
        rows = manifest(out)
        fate = summary.counts["train"]["source_objects"]
        assert len(rows) == len(lines) == fate["total"]
        assert fate["kept"] + fate["filtered"] + fate["dropped"] + fate["invalid"] == fate["total"]
        assert sum(len(r["windows"]) for r in rows) == summary.counts["train"]["instances"]
        assert all((r["status"] == "kept") == bool(r["windows"]) for r in rows)


def test_worker_memory_stays_near_two_copies_of_the_image(tmp_path):
    # One unit at scale 0.5 of a 1,500 x 1,500 image: decoded source (6.75 MB) + resized copy (1.7 MB) +
    # windows. numpy (and OpenCV's numpy allocator) report to tracemalloc.
    from dotamini10 import worker
    from dotamini10.plan import plan_units
    from dotamini10.problems import ProblemLog
    from dotamini10.read import find_splits
    from dotamini10.sources import read_sources
    from dotamini10.worker import UnitSettings

    root = make_split(tmp_path / "src", {"m": (1500, 1500)}, {"m": [box(10, 10, 40, 40, "plane")]})
    options = BuildOptions(crop_size=256, stride=192, scale_mode="fixed", scales=(0.5,), drop_empty_train=False)
    images, _ = read_sources(root, find_splits(root), options.classes, ProblemLog())

    (tmp_path / "out" / "images" / "train").mkdir(parents=True)
    (tmp_path / "out" / "labelTxt" / "train").mkdir(parents=True)
    settings_ = UnitSettings(tmp_path / "out", 0, 256, 0.7, 0, False, 0, 0.5, (0.0, 0.0, 0.0), "area", 1, 2)
    (plan,) = plan_units(images, options, settings_, workers=1)
    (unit,) = plan.units
    worker._CACHE = worker._ImageCache()
    tracemalloc.start()
    result = worker.run_unit(unit)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(result.windows) == 16
    image_bytes = 1500 * 1500 * 3
    assert peak < 1.6 * image_bytes, peak / image_bytes  # source + resized (0.25) + window/PNG buffers
    cache = worker._CACHE
    assert cache.source is not None and cache.scaled.shape == (750, 750, 3)


def test_units_cut_only_images_that_are_a_large_share_of_the_build(tmp_path):
    from dotamini10.plan import plan_units
    from dotamini10.problems import ProblemLog
    from dotamini10.read import find_splits
    from dotamini10.sources import read_sources
    from dotamini10.worker import UnitSettings

    settings_ = UnitSettings(tmp_path, 0, 128, 0.7, 0, True, 0, 0.5, (0.0, 0.0, 0.0), "area", 1, 2)

    def units(images: dict[str, tuple[int, int]], workers: int) -> dict[str, int]:
        root = make_split(tmp_path / f"src{len(list(tmp_path.iterdir()))}", images,
                          {s: [box(1, 1, 9, 9, "plane")] for s in images})
        images, _ = read_sources(root, find_splits(root), SMALL.classes, ProblemLog())
        return {p.image.stem: len(p.units) for p in plan_units(images, SMALL, settings_, workers=workers)}

    # One image of 6 x 4 = 24 windows alone: 4 units per worker, so every worker gets a share and the last
    # units to finish are short.
    assert units({"big": (600, 400)}, workers=2) == {"big": 8}
    assert units({"big": (600, 400)}, workers=1) == {"big": 1}
    # Four equal images for two workers: no image is cut (each worker decodes whole images of its own).
    assert units({s: (600, 400) for s in "abcd"}, workers=2) == dict.fromkeys("abcd", 1)
    # One large image among small ones: only the large one is cut.
    assert units({"big": (600, 400), "s1": (100, 100), "s2": (100, 100)}, workers=2) == {"big": 8, "s1": 1, "s2": 1}


def test_synthetic_default_builds_from_the_seed(tmp_path):
    pytest.importorskip("dotamini10.synthetic")
    out = tmp_path / "syn"
    summary = build_dotamini10(out, seed=0, workers=2, options=BuildOptions(scale_mode="fixed", scales=(0.5,)))
    info = json.loads((out / "build.json").read_text(encoding="utf-8"))
    assert info["source"]["kind"] == "synthetic" and info["source"]["seed"] == 0
    assert summary.counts["train"]["instances"] > 0 and summary.counts["val"]["images"] > 0
    assert not (out / ".work").exists()


def test_an_unreadable_label_file_excludes_its_image(tmp_path):
    root = make_split(tmp_path / "src", {"a": (150, 150), "b": (150, 150)}, {"a": [box(10, 10, 40, 30, "plane")]})
    (root / "labelTxt" / "b.txt").write_bytes(b"\xff\xfe 1 2 3")
    summary = build_dotamini10(tmp_path / "o", dota_root=root, options=BuildOptions(
        crop_size=128, stride=96, scale_mode="fixed", scales=(1.0,), drop_empty_train=False))
    assert summary.problems == {"unreadable_label": 1}
    coco = json.loads((tmp_path / "o" / "annotations" / "train.json").read_text(encoding="utf-8"))
    assert {im["source"] for im in coco["images"]} == {"a"}  # b's windows would be false negatives
    info = json.loads((tmp_path / "o" / "build.json").read_text(encoding="utf-8"))
    assert set(info["inputs"]) == {"labelTxt/a.txt", "images/a.png", "labelTxt/b.txt", "images/b.png"}


def test_in_process_builds_read_the_image_again(tmp_path):
    root = make_split(tmp_path / "src", {"a": (150, 150)}, {"a": [box(10, 10, 40, 30, "plane")]})
    build_dotamini10(tmp_path / "one", dota_root=root, options=SMALL)
    write_image(root / "images" / "a.png", 150, 150, seed=99)  # same name, other pixels
    build_dotamini10(tmp_path / "two", dota_root=root, options=SMALL)
    first, second = (json.loads((tmp_path / d / "build.json").read_text(encoding="utf-8"))["outputs"]
                     for d in ("one", "two"))
    assert first["images/train/a__1__0___0.png"] != second["images/train/a__1__0___0.png"]


def test_progress_reports_every_window_once(release, tmp_path):
    seen = []
    summary = build_dotamini10(tmp_path / "o", dota_root=release, options=SMALL, workers=2,
                               progress=lambda done, total: seen.append((done, total)))
    assert seen[0][0] == 0 and seen[-1] == (summary.windows_total, summary.windows_total)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
