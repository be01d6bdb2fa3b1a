"""DOTAmini10: build the paper's ten-class DOTA subset (appendix A.3) with trustworthy statistics."""


def __getattr__(name: str) -> str:
    # The version is looked up on first use: importlib.metadata costs ~20 ms, paid otherwise by every worker
    # process the builder starts. One source of truth: pyproject.toml's version, as installed (editable).
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("hsfpn-toolkit")
    except PackageNotFoundError:  # a source tree that was never installed
        value = "unknown"
    globals()["__version__"] = value
    return value
