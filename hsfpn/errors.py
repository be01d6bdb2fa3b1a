"""Domain errors of the hsfpn package: the CLI turns each into a one-line message and exit code 1."""


class HSFPNError(Exception):
    """Base class for every expected failure of the neck, the metric and their tools."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """``TypeName: first line of the message`` (at most ``limit`` characters of it): a foreign library's error
    inside our one-line messages, whose full text may run to pages (a pickle's stack, a config's source)."""
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:limit]}"
