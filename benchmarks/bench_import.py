"""Benchmark: start-up cost of the light entry points (import budget of hsfpn.nn, hsfpn.aitod_eval, the CLIs).

Prints, for each entry point, the ``python -X importtime`` figures of a fresh interpreter (the sum of every
module's own import time, and the cumulative time of the entry module itself) and which heavy packages it loaded
(torch, mmcv, mmdet, mmengine). ``hsfpn.mmdet`` is the registration of the MMDetection components, i.e. what
``import hsfpn`` loaded for every entry point before the package was split.

Then the wall time of whole commands, process start included (median of ``--repeats`` runs): ``hsfpn-repro eval``
on a 10-image case written here, the same command in a process that first loads the MMDetection registration
(what it cost before), ``hsfpn-data --help``, and a bare ``python -c pass`` for the interpreter's own start-up.

Usage::

    python benchmarks/bench_import.py
    python benchmarks/bench_import.py --repeats 9 --images 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "mmcv", "mmdet", "mmengine")
ENTRY_POINTS = ("hsfpn.aitod_eval", "hsfpn.nn", "hsfpn", "hsfpn.convert", "cli", "hsfpn.mmdet")


@dataclass(frozen=True)
class ImportCost:
    """``-X importtime`` figures of one ``import module`` in a fresh interpreter (seconds)."""

    module: str
    total_s: float  # sum of every imported module's own time
    module_s: float  # cumulative time of ``module`` itself
    heavy: tuple[str, ...]  # heavy top-level packages that ended up imported


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def import_cost(module: str) -> ImportCost:
    """Import ``module`` with ``-X importtime`` in a child and sum its report."""
    probe = f"import sys, {module}; print(sorted({{m.partition('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", probe], capture_output=True, text=True,
                            env=_env(), cwd=REPO, check=True)
    total_us = module_us = 0
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = (part.strip() for part in line[len("import time:"):].split("|"))
        total_us += int(self_us)
        if name == module:
            module_us = int(cumulative_us)
    heavy = tuple(json.loads(result.stdout.strip().replace("'", '"')))
    return ImportCost(module, total_us / 1e6, module_us / 1e6, heavy)


def write_eval_case(root: Path, images: int, seed: int = 0) -> tuple[Path, Path]:
    """An AI-TOD-like case: ``images`` images of 800 x 800 with 25 tiny objects each and noisy detections."""
    rng = random.Random(seed)
    gt = {"images": [{"id": i, "width": 800, "height": 800} for i in range(1, images + 1)],
          "categories": [{"id": 1, "name": "vehicle"}, {"id": 2, "name": "ship"}], "annotations": []}
    dets = []
    for image in range(1, images + 1):
        for _ in range(25):
            x, y, w, h = rng.uniform(0, 770), rng.uniform(0, 770), rng.uniform(2, 30), rng.uniform(2, 30)
            category = rng.choice((1, 2))
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image, "category_id": category,
                                      "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            dets.append({"image_id": image, "category_id": category, "score": rng.random(),
                         "bbox": [x + rng.uniform(-2, 2), y + rng.uniform(-2, 2), w, h]})
    (root / "gt.json").write_text(json.dumps(gt), encoding="utf-8")
    (root / "dets.json").write_text(json.dumps(dets), encoding="utf-8")
    return root / "gt.json", root / "dets.json"


def wall_time(argv: list[str], repeats: int) -> float:
    """Median wall-clock seconds of running ``argv`` to completion (process start included)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=_env(), cwd=REPO)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per wall-time figure (median)")
    parser.add_argument("--images", type=int, default=10, help="images in the eval case")
    args = parser.parse_args(argv)

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; -X importtime of one fresh `import MODULE`")
    print(f"  {'module':<18}{'all imports s':>14}{'module s':>10}  heavy packages loaded")
    for module in ENTRY_POINTS:
        cost = import_cost(module)
        print(f"  {module:<18}{cost.total_s:>14.3f}{cost.module_s:>10.3f}  {', '.join(cost.heavy) or '-'}")

    with tempfile.TemporaryDirectory() as tmp:
        ann, dets = write_eval_case(Path(tmp), args.images)
        command = ["eval", "--ann", str(ann), "--dets", str(dets)]
        runs = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "hsfpn-data --help": [sys.executable, "-c", "import cli; cli.data_main()", "--help"],
            f"hsfpn-repro eval ({args.images} images)": [sys.executable, "-c", "import cli; cli.repro_main()",
                                                         *command],
            "  same, MMDetection registration loaded": [
                sys.executable, "-c", "import hsfpn.mmdet, cli; cli.repro_main()", *command],
        }
        print(f"\nwall time of whole commands, process start included (median of {args.repeats})")
        seconds = {name: wall_time(cmd, args.repeats) for name, cmd in runs.items()}
    eval_name = f"hsfpn-repro eval ({args.images} images)"
    for name, s in seconds.items():
        print(f"  {name:<42}{s:>7.3f} s")
    before = seconds["  same, MMDetection registration loaded"]
    print(f"  eval: {seconds[eval_name]:.3f} s, {before / seconds[eval_name]:.1f}x faster than with the registration "
          f"loaded ({before:.3f} s); target < 1 s: {'met' if seconds[eval_name] < 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
