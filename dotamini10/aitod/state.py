"""What an AI-TOD build has finished, for ``--resume``: the one owner of ``out/.work``.

Notes:
    Every finished task leaves its :class:`~dotamini10.aitod.tasks.TaskResult` under ``.work/records/{key}.json``
    (written atomically, after the task's files). ``--resume`` skips the tasks whose record exists and reports no
    problem; a task that met a problem (a missing tif, say) runs again, so fixing the input and resuming fills
    the hole. ``.work/state.json`` holds the build's fingerprint (options and inputs): a resumed build must match
    it. The build removes ``.work`` once the dataset is complete, and keeps it otherwise.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import DatasetError
from ..io import json_text, read_json_if_valid, remove_temporaries, write_json
from .tasks import TaskResult

WORK_DIR = ".work"


class AitodState:
    """Resume records of one build's tasks.

    Args:
        out_dir: The output folder.
    """

    def __init__(self, out_dir: Path) -> None:
        self.work = Path(out_dir) / WORK_DIR
        self.records = self.work / "records"

    def check_fingerprint(self, fingerprint: dict[str, object], *, resume: bool) -> None:
        """Record ``fingerprint`` for a fresh build; for a resumed one, require the recorded one to equal it.

        Raises:
            DatasetError: ``resume`` and the folder's unfinished build had other options or inputs.
        """
        path = self.work / "state.json"
        wanted = json.loads(json_text(fingerprint))  # as it reads back (tuples become lists)
        recorded = read_json_if_valid(path) if resume else None
        if recorded is not None and recorded != wanted:
            changed = sorted(k for k in set(wanted) | set(recorded) if wanted.get(k) != recorded.get(k))
            raise DatasetError(
                f"--resume: the unfinished build in {self.work.parent} used other {', '.join(changed)}; "
                "use --overwrite to start again"
            )
        self.work.mkdir(parents=True, exist_ok=True)
        remove_temporaries(self.work.parent / "images")  # what a killed run was writing never got its name
        write_json(path, wanted)

    def finished(self, key: str) -> TaskResult | None:
        """The record of task ``key`` when it finished without a problem, else None."""
        data = read_json_if_valid(self.records / f"{key}.json")
        if not isinstance(data, dict):
            return None
        result = TaskResult.from_dict(data)
        return None if result.problems else result

    def save(self, result: TaskResult) -> None:
        """Record a finished task."""
        write_json(self.records / f"{result.key}.json", result.to_dict())

    def clear(self) -> None:
        """Delete ``.work`` (the dataset is complete)."""
        shutil.rmtree(self.work, ignore_errors=True)
