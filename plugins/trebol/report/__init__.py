"""The run report (``<reports>/<date>/index.html``): the state of the night on one page, offline."""

from pathlib import Path

INDEX = "index.html"


def report_path(report_dir: Path) -> Path:
    """Where the run report of a report folder is."""
    return report_dir / INDEX
