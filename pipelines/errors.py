"""Domain errors of the reproduction pipelines: the CLI turns each into a one-line message and exit code 1."""


class PipelineError(Exception):
    """Base class for every expected failure of the reproduction runners (bad data root, bad rows)."""
