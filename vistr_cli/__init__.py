"""vistr_cli: the thin Typer shell over vistr_core."""

import os

from vistr_cli.openmp import openmp_defaults

# Here, not in a command: OpenMP reads its environment once, when torch is first imported.
os.environ.update(openmp_defaults(os.environ))
