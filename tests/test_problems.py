"""Tests of dotamini10.problems: records, strict mode and counts."""

from __future__ import annotations

import pytest

from dotamini10.errors import DatasetError
from dotamini10.problems import Problem, ProblemLog, StrictModeError, count_reasons


def test_problem_message_names_file_and_line():
    assert Problem("a.txt", 3, "non_numeric", "coordinate 'x'").message() == "a.txt:3: non_numeric: coordinate 'x'"
    assert Problem("b.png", 0, "truncated_image").message() == "b.png: truncated_image"
    with pytest.raises(ValueError, match="reason"):
        Problem("a.txt", 1, "made_up")


def test_log_sorts_and_counts():
    log = ProblemLog()
    log.add(Problem("b.txt", 2, "token_count"))
    log.extend([Problem("a.txt", 9, "non_numeric"), Problem("a.txt", 1, "non_numeric")])
    assert [(p.file, p.line) for p in log.problems] == [("a.txt", 1), ("a.txt", 9), ("b.txt", 2)]
    assert log.counts() == {"non_numeric": 2, "token_count": 1}
    assert len(log) == 3
    assert log.problems[0].to_dict() == {"file": "a.txt", "line": 1, "reason": "non_numeric", "detail": ""}


def test_count_reasons_counts_each_reason_in_key_order():
    found = [Problem("b.txt", 2, "token_count"), Problem("a.txt", 9, "non_numeric"), Problem("c.txt", 1, "token_count")]
    assert list(count_reasons(found).items()) == [("non_numeric", 1), ("token_count", 2)]
    assert count_reasons([]) == {} and count_reasons(iter(found)) == count_reasons(found)  # any iterable


def test_strict_mode_stops_at_the_first_problem():
    log = ProblemLog(strict=True)
    with pytest.raises(StrictModeError, match=r"^a\.txt:4: unknown_category: 'jet'$") as info:
        log.add(Problem("a.txt", 4, "unknown_category", "'jet'"))
    assert isinstance(info.value, DatasetError)


def test_a_whole_file_problem_has_line_null_in_problems_jsonl():
    from dotamini10.io import jsonl_text

    log = ProblemLog()
    log.extend([Problem("b.png", 0, "truncated_image"), Problem("a.txt", 2, "token_count"),
                Problem("a.txt", None, "unreadable_label")])
    assert [(p.file, p.line) for p in log.problems] == [("a.txt", None), ("a.txt", 2), ("b.png", None)]
    assert jsonl_text(p.to_dict() for p in log.problems).splitlines()[0] == (
        '{"file":"a.txt","line":null,"reason":"unreadable_label","detail":""}')
