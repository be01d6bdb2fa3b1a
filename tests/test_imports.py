"""Import budget: what each entry point may load, checked in child processes whose import system refuses the
packages a path must not need (a refused import raises, so a path that needs one fails instead of passing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OPENMMLAB = ("mmcv", "mmdet", "mmengine")

# Runs first in the child: a meta-path finder ahead of all others that refuses the named top-level packages.
REFUSE = """
import sys

class _Refuse:
    def __init__(self, names):
        self.names = frozenset(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"{fullname} is refused in this test", name=fullname)
        return None

sys.meta_path.insert(0, _Refuse(REFUSED_NAMES))
"""


def run_refusing(names: tuple[str, ...], code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (repository first on the path) that refuses to import ``names``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    script = REFUSE.replace("REFUSED_NAMES", repr(names)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO)


def test_the_refusal_itself_works():
    # Guards the tests below: a refused package really cannot be imported in the child.
    result = run_refusing(("wave",), "import wave")
    assert result.returncode == 1 and "wave is refused in this test" in result.stderr


def test_nn_and_aitod_eval_need_no_openmmlab_nor_torch_dct():
    code = """
    import torch
    import hsfpn.nn, hsfpn.aitod_eval, hsfpn.convert
    neck = hsfpn.nn.HSFPN([32, 64, 128, 256], 32, 5)
    outs = neck([torch.rand(1, c, 32 >> i, 32 >> i) for i, c in enumerate([32, 64, 128, 256])])
    print([tuple(o.shape[2:]) for o in outs])
    print(sorted(m for m in sys.modules if m.partition(".")[0] in {"mmcv", "mmdet", "mmengine", "torch_dct"}))
    """
    result = run_refusing((*OPENMMLAB, "torch_dct"), code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]", "[]"]


def test_aitod_eval_needs_no_torch():
    code = """
    import hsfpn.aitod_eval as ev
    gt = ev.GroundTruth.from_coco({"images": [{"id": 1}], "categories": [{"id": 1, "name": "car"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 8, 8], "area": 64}]})
    dets = ev.Detections.from_coco([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 8, 8], "score": 0.9}], gt)
    print(round(ev.AITODEval(gt, dets).run()["AP"], 6), "torch" in sys.modules)
    """
    result = run_refusing(("torch", *OPENMMLAB), code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1.0", "False"]


def write_eval_case(root: Path, images: int = 10) -> tuple[Path, Path]:
    """``images`` images with one 7 x 7 car each (very tiny: area 49 < 8^2) and a perfect detection of each: AP 1."""
    gt = {"images": [{"id": i} for i in range(1, images + 1)], "categories": [{"id": 1, "name": "car"}],
          "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [10.0 * i, 5.0, 7.0, 7.0], "area": 49.0,
                           "iscrowd": 0} for i in range(1, images + 1)]}
    dets = [{"image_id": i, "category_id": 1, "bbox": [10.0 * i, 5.0, 7.0, 7.0], "score": 0.5} for i in
            range(1, images + 1)]
    (root / "gt.json").write_text(json.dumps(gt), encoding="utf-8")
    (root / "dets.json").write_text(json.dumps(dets), encoding="utf-8")
    return root / "gt.json", root / "dets.json"


def test_repro_eval_command_loads_no_torch_nor_openmmlab(tmp_path):
    # The command's start-up is what its wall time is made of (benchmarks/bench_import.py measures it).
    ann, dets = write_eval_case(tmp_path)
    code = """
    import cli
    sys.argv = ["hsfpn-repro", *sys.argv[1:]]
    try:
        cli.repro_main()
    except SystemExit as exc:
        assert not exc.code, exc.code
    print("loaded:", sorted(m for m in sys.modules if m.partition(".")[0] in {"torch", "mmcv", "mmdet", "mmengine"}))
    """
    out = tmp_path / "report.json"
    result = run_refusing(("torch", *OPENMMLAB), code, "eval", "--ann", str(ann), "--dets", str(dets),
                          "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "loaded: []"
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["AP"] == pytest.approx(1.0) and report["APvt"] == pytest.approx(1.0) and report["APt"] == -1


def test_data_commands_load_no_torch(dota_sample, tmp_path):
    # Every hsfpn-data command: build-dotamini10 (two workers, forked from this process) and stats on the real
    # DOTA sample, coco-gt of its labels, merge of window results, and synthetic-dota.
    out = tmp_path / "DOTAmini10"
    windows = tmp_path / "windows"
    windows.mkdir()
    (windows / "Task2_ship.txt").write_text("S1__1__768___0 0.9 32 100 72 130\n", encoding="utf-8")
    code = f"""
    import cli
    def run(*args):
        sys.argv = ["hsfpn-data", *args]
        try:
            cli.data_main()
        except SystemExit as exc:
            assert not exc.code, (args, exc.code)
    run("build-dotamini10", "--dota-root", {str(dota_sample)!r}, "--out", {str(out)!r}, "--workers", "2",
        "--quiet")
    run("stats", {str(out)!r})
    run("coco-gt", "--dota-root", {str(dota_sample)!r}, "--out", {str(tmp_path / "gt.json")!r})
    run("merge", {str(windows)!r}, "--out", {str(tmp_path / "full")!r})
    run("synthetic-dota", "--out", {str(tmp_path / "synthetic")!r})
    print("loaded:", sorted(m for m in sys.modules if m.partition(".")[0] in {{"torch", "mmcv", "mmdet", "mmengine"}}))
    """
    result = run_refusing(("torch", *OPENMMLAB), code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "loaded: []"
    assert (out / "annotations" / "train.json").is_file() and (out / "stats").is_dir()
    assert (tmp_path / "gt.json").is_file()
    assert (tmp_path / "full" / "Task2_ship.txt").read_text(encoding="utf-8") == "S1 0.9 800.0 100.0 840.0 130.0\n"
    assert (tmp_path / "synthetic" / "train" / "labelTxt").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("imports,mode", [("hsfpn", "light-first"), ("hsfpn.mmdet", "fresh")])
def test_configs_register_hsfpn_through_custom_imports(tmp_path, imports, mode):
    # 'hsfpn' (existing configs): the process imported the light parts first, so the config loader's import of
    # the already imported 'hsfpn' runs nothing; building the model still finds HSFPN, and the metric and the
    # assigners are registered with it. 'hsfpn.mmdet' (the registration module) in a fresh process.
    config = tmp_path / "config.py"
    config.write_text(f"custom_imports = dict(imports=[{imports!r}], allow_failed_imports=False)\n"
                      "neck = dict(type='HSFPN', in_channels=[32, 64], out_channels=32, num_outs=3)\n",
                      encoding="utf-8")
    code = """
    if sys.argv[2] == "light-first":
        import hsfpn.aitod_eval, hsfpn.nn
        assert "mmdet" not in sys.modules
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(sys.argv[1])
    init_default_scope("mmdet")
    from mmdet.registry import METRICS, MODELS, TASK_UTILS
    neck = MODELS.build(cfg.neck)
    print(type(neck).__module__, type(neck).__name__, "AITODMetric" in METRICS.module_dict,
          "RankingAssigner" in TASK_UTILS.module_dict)
    """
    result = run_refusing((), code, str(config), mode)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-4:] == ["hsfpn.neck", "HSFPN", "True", "True"], result.stdout
