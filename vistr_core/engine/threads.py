"""How many CPU threads torch computes with, on a machine other processes share.

Why this exists: torch's OpenMP pool defaults to one thread per core, and every parallel op ends
at a barrier where all of its threads must arrive. When another CPU-bound process holds one of the
cores, one of our threads waits for a time slice at every barrier while the others spin, so each of
the thousands of small ops in a VisTR step pays a scheduler delay: measured on 2 cores, one
co-tenant made a training step ~10x slower, not the 2x that sharing explains
(``benchmarks/cotenant.py``). Running as many threads as cores are actually free removes the
barrier waits, and re-checking while a long command runs follows co-tenants that come and go.

The policy: the usable CPUs are this process's affinity mask (capped by a cgroup CPU quota and by
torch's own default, e.g. ``OMP_NUM_THREADS``); the cores busy with *other* processes are measured
from ``/proc/stat`` minus this process's own CPU time (so our threads, spinning or not, never
count against us; DataLoader workers, being other processes, do); a core counts as taken once
others use more than :data:`TAKEN_CORE_FRACTION` of it. ``VISTR_THREADS=N`` or an explicit count
(the CLI's ``--threads``) wins over all of this and is held as given.

Nothing here changes process state at import: :class:`ThreadGovernor` applies the policy when a
command enters it and restores torch's thread count when it leaves.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from ..errors import ConfigError

ThreadSetting = int | Literal["auto"] | None  # a fixed count, the policy, or: leave torch alone
ENV_THREADS = "VISTR_THREADS"
# A core counts as taken when other processes use more than this fraction of it: even a half-busy
# core costs a descheduled thread at some barriers, while short bursts (a shell, an editor) stay
# under it.
TAKEN_CORE_FRACTION = 0.3
RECHECK_SECONDS = 10.0  # how often a long command re-measures the co-tenants
PROBE_SECONDS = 0.25  # the first measurement, taken when a command starts

_PROC_STAT = Path("/proc/stat")
_SELF_STAT = Path("/proc/self/stat")
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def choose_threads(usable: int, others_busy: float | None) -> int:
    """Intra-op threads for ``usable`` CPUs of which other processes keep ``others_busy`` cores busy.

    ``others_busy`` is in cores (1.0 = one core fully used); None (not measurable) means none.
    Always at least 1 and at most ``usable``.
    """
    if others_busy is None:
        return max(1, usable)
    taken = max(0, math.ceil(others_busy - TAKEN_CORE_FRACTION))
    return max(1, min(usable, usable - taken))


def thread_setting(threads: int | None, environ: Mapping[str, str] | None = None) -> int | Literal["auto"]:
    """What the user asked for: ``threads`` (the CLI's ``--threads``), else ``$VISTR_THREADS``, else auto.

    ``VISTR_THREADS=auto`` or empty means automatic too.
    """
    if threads is not None:
        if threads < 1:
            raise ConfigError(
                f"--threads {threads}: give a positive number of threads, or leave it out for auto"
            )
        return threads
    value = (os.environ if environ is None else environ).get(ENV_THREADS, "").strip()
    if value in ("", "auto"):
        return "auto"
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(
            f"{ENV_THREADS}={value!r} is not a positive number of threads; set e.g. {ENV_THREADS}=2, "
            f"or {ENV_THREADS}=auto"
        )
    return int(value)


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(count, math.ceil(quota)) if quota else count)


def _cgroup_quota() -> float | None:
    """The cgroup v2 CPU limit in cores (``cpu.max`` = "quota period"), None when unlimited."""
    try:
        quota, period = _CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU time (clock ticks) of the usable CPUs, and of this process, at one moment."""

    busy: int  # ticks the CPUs spent running anything (including steal: another VM had the core)
    total: int  # busy + idle ticks, summed over the CPUs
    own: int  # ticks this process's threads ran (user + system)
    cpus: int


def read_sample(cpus: set[int] | None = None) -> CpuSample | None:
    """Read ``/proc/stat`` (the given CPUs, default: the affinity mask) and ``/proc/self/stat``.

    None where /proc is not there (not Linux), so callers fall back to all usable CPUs.
    """
    try:
        stat_lines = _PROC_STAT.read_text().splitlines()
        self_stat = _SELF_STAT.read_text()
    except OSError:
        return None
    if cpus is None:
        cpus = os.sched_getaffinity(0)
    busy = total = seen = 0
    for line in stat_lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        # user nice system idle iowait irq softirq steal (guest time is already inside user)
        ticks = [int(v) for v in fields[:8]] + [0] * (8 - len(fields[:8]))
        idle = ticks[3] + ticks[4]
        busy += sum(ticks) - idle
        total += sum(ticks)
        seen += 1
    # Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    after_name = self_stat.rsplit(")", 1)[1].split()
    own = int(after_name[11]) + int(after_name[12])
    return CpuSample(busy=busy, total=total, own=own, cpus=seen)


def others_busy(before: CpuSample | None, after: CpuSample | None) -> float | None:
    """Cores kept busy by other processes between two samples (None when not measurable)."""
    if before is None or after is None or after.cpus == 0 or after.total <= before.total:
        return None
    ticks_per_cpu = (after.total - before.total) / after.cpus
    others = (after.busy - before.busy) - (after.own - before.own)
    return max(0.0, others / ticks_per_cpu)


class ThreadGovernor:
    """Keeps torch's intra-op thread count at the free cores while a command runs.

    Use as a context manager around the work and call :meth:`update` from the computing thread
    (OpenMP thread counts belong to the calling thread) between units of work: a training step, a
    segmented window. It re-measures at most every ``recheck_seconds``, over the whole time since
    the last measurement, so a check costs two small file reads.

    Args:
        setting: ``"auto"`` (the policy above), a fixed count (held, never changed), or None:
            leave torch's thread count alone (library default; ``update`` does nothing).
    """

    def __init__(
        self,
        setting: ThreadSetting = "auto",
        *,
        recheck_seconds: float = RECHECK_SECONDS,
        probe_seconds: float = PROBE_SECONDS,
    ) -> None:
        if setting is not None and setting != "auto" and (not isinstance(setting, int) or setting < 1):
            raise ConfigError(f"threads={setting!r}: give a positive number of threads, 'auto' or None")
        self.setting = setting
        self.recheck_seconds = recheck_seconds
        self.probe_seconds = probe_seconds
        self.threads = torch.get_num_threads()
        self.others_busy: float | None = None
        self.history: list[int] = []  # thread counts chosen, one per measurement (for meta/benchmarks)
        self._ceiling = self._saved = self.threads
        self._sample: CpuSample | None = None
        self._sampled_at = 0.0

    def __enter__(self) -> ThreadGovernor:
        self._saved = self.threads = torch.get_num_threads()
        if isinstance(self.setting, int):
            self._set(self.setting)
            self.history.append(self.threads)
        elif self.setting == "auto":
            # torch's default already honours OMP_NUM_THREADS and SMT; never go above it.
            self._ceiling = max(1, min(self._saved, usable_cpus()))
            self._sample, self._sampled_at = read_sample(), time.monotonic()
            if self._sample is not None and self.probe_seconds > 0:
                time.sleep(self.probe_seconds)
            self._measure()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.setting is not None:
            torch.set_num_threads(self._saved)

    def update(self) -> int:
        """Re-measure if ``recheck_seconds`` have passed; returns the thread count in force."""
        if self.setting == "auto" and time.monotonic() - self._sampled_at >= self.recheck_seconds:
            self._measure()
        return torch.get_num_threads()

    def summary(self) -> dict[str, object]:
        """What to record in meta.json: the setting and every thread count used so far."""
        used = list(dict.fromkeys(self.history)) if self.history else [torch.get_num_threads()]
        return {"setting": self.setting if self.setting is not None else "torch", "used": used}

    def _measure(self) -> None:
        sample, now = read_sample(), time.monotonic()
        self.others_busy = others_busy(self._sample, sample)
        self._sample, self._sampled_at = sample, now
        self._set(choose_threads(self._ceiling, self.others_busy))
        self.history.append(self.threads)

    def _set(self, threads: int) -> None:
        self.threads = threads
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
