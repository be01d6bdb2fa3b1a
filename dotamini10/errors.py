"""Domain errors of the dataset toolkit: the CLI turns each into a one-line message and exit code 1."""


class DatasetError(Exception):
    """Base class for every expected failure of the dataset toolkit (bad input, bad options)."""
