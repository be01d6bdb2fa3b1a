"""The lists of xView windows in AI-TOD: ``aitod_xview/aitod_xview_{split}.txt`` of the AI-TOD repository.

Each file is the text of a Python list literal of names ``{xview_id}__{x}_{y}.png``: the window of the xView
training tif ``{xview_id}.tif`` whose top-left corner is ``(x, y)``. The official script takes the text apart by
string replacement; here it is parsed as a literal (``ast.literal_eval``, which evaluates no code), so a damaged
file is reported rather than misread.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from ..problems import Problem

#: AI-TOD's splits; train and val together are trainval.
SPLITS: tuple[str, ...] = ("train", "val", "trainval", "test")
LIST_NAME = "aitod_xview_{split}.txt"
_WINDOW_NAME = re.compile(r"(\d+)__(\d+)_(\d+)\.png")


@dataclass(frozen=True, order=True)
class XviewWindow:
    """One listed window.

    Attributes:
        xview_id: The tif's name without suffix (digits, as xView names them).
        x: Left edge in the tif, px.
        y: Top edge in the tif, px.
    """

    xview_id: str
    x: int
    y: int

    @property
    def name(self) -> str:
        """The output file name, ``{xview_id}__{x}_{y}.png``."""
        return f"{self.xview_id}__{self.x}_{self.y}.png"


def parse_window_name(name: str) -> XviewWindow | None:
    """The window a name denotes, or None when it is not ``{digits}__{x}_{y}.png``.

    >>> parse_window_name("1908__2585_2477.png")
    XviewWindow(xview_id='1908', x=2585, y=2477)
    """
    match = _WINDOW_NAME.fullmatch(name)
    if match is None:
        return None
    return XviewWindow(match[1], int(match[2]), int(match[3]))


def parse_list_text(text: str, *, file: str) -> tuple[list[XviewWindow], list[Problem]]:
    """The windows of one list file's text.

    Args:
        text: The file content.
        file: The name problems give for the file.

    Returns:
        ``(windows, problems)``: the windows in file order without repeats, and one problem for a text that is
        not a list of strings (then no window) or for each entry that is not a window name.
    """
    try:
        names = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
        return [], [Problem(file, 0, "unparsable_list", f"not a Python list literal{where}")]
    if not isinstance(names, (list, tuple)):
        return [], [Problem(file, 0, "unparsable_list", f"holds a {type(names).__name__}, not a list")]
    windows: dict[XviewWindow, None] = {}
    problems = []
    for index, name in enumerate(names):
        window = parse_window_name(name) if isinstance(name, str) else None
        if window is None:
            problems.append(Problem(file, 0, "bad_list_entry", f"entry {index}: {name!r:.80}"))
        else:
            windows.setdefault(window, None)
    return list(windows), problems


def read_lists(lists_dir: Path) -> tuple[dict[str, list[XviewWindow]], list[Problem]]:
    """The windows of every split's list in ``lists_dir``.

    Args:
        lists_dir: The folder holding ``aitod_xview_{split}.txt`` (``aitodtoolkit/aitod_xview`` of the AI-TOD
            repository).

    Returns:
        ``(windows by split, problems)``; a split whose list is missing or unreadable gets no windows and a
        problem naming the file.
    """
    lists: dict[str, list[XviewWindow]] = {}
    problems: list[Problem] = []
    for split in SPLITS:
        path = Path(lists_dir) / LIST_NAME.format(split=split)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(Problem(str(path), 0, "missing_list", "no such file"))
            lists[split] = []
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(path), 0, "unparsable_list", f"cannot be read as UTF-8 text ({exc})"))
            lists[split] = []
            continue
        lists[split], found = parse_list_text(text, file=str(path))
        problems.extend(found)
    return lists, problems
