"""Domain errors of the hsfpn package: the CLI turns each into a one-line message and exit code 1."""


class HSFPNError(Exception):
    """Base class for every expected failure of the neck, the metric and their tools."""
