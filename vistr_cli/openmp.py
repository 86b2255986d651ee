"""OpenMP settings the CLI puts in the environment before torch loads (the runtime reads them once).

torch's OpenMP runtime (GNU libgomp in the PyPI wheels) makes a thread that reaches a barrier
spin for GOMP_SPINCOUNT iterations (default 300 000, milliseconds) before it sleeps. On a shared
machine a sibling thread that lost its core keeps the others spinning that long at every
parallel op, burning the time slices the co-tenant and the late thread need. 10 000 iterations
(tens of microseconds) still cover the gaps between the ops of a step on a quiet machine
(``benchmarks/cotenant.py``: the same R50 forward time), and stop the burning soon. Passive
waiting (``OMP_WAIT_POLICY=PASSIVE``) was measured too: ~1.5x slower forwards on a quiet machine.

Nothing is changed if the user set any of these variables.
"""

from __future__ import annotations

from collections.abc import Mapping

SPIN_COUNT = "10000"
_USER_CHOICES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def openmp_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to add to ``environ`` (empty when the user already chose a wait policy)."""
    if any(name in environ for name in _USER_CHOICES):
        return {}
    return {"GOMP_SPINCOUNT": SPIN_COUNT}
