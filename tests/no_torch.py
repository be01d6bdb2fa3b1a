"""Run ``hsfpn-data`` commands in a fresh interpreter that refuses torch and OpenMMLab (``test_imports``'s
refusal), and report which of those modules got loaded: the dataset commands must run without them."""

from __future__ import annotations

import subprocess

from test_imports import OPENMMLAB, run_refusing


def run_data_commands(*commands: list[str]) -> subprocess.CompletedProcess:
    """Run each command (``hsfpn-data`` arguments) in one child; its last line is ``loaded: [...]``."""
    code = f"""
    import cli
    for args in {[list(c) for c in commands]!r}:
        sys.argv = ["hsfpn-data", *args]
        try:
            cli.data_main()
        except SystemExit as exc:
            assert not exc.code, (args, exc.code)
    print("loaded:", sorted(m for m in sys.modules if m.partition(".")[0] in {{"torch", "mmcv", "mmdet", "mmengine"}}))
    """
    return run_refusing(("torch", *OPENMMLAB), code)
