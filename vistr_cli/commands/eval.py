"""`vistr eval` (being built)."""

from __future__ import annotations

from vistr_cli.errors import reports_errors
from vistr_core.errors import VistrError


@reports_errors
def evaluate() -> None:
    """Not available yet in this build."""
    raise VistrError("vistr eval is not available yet in this build")
