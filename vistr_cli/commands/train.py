"""`vistr train` (being built)."""

from __future__ import annotations

from vistr_cli.errors import reports_errors
from vistr_core.errors import VistrError


@reports_errors
def train() -> None:
    """Not available yet in this build."""
    raise VistrError("vistr train is not available yet in this build")
