"""How much CPU other processes used while a benchmark ran, so a disturbed run can be told apart.

On these 2-core machines one busy neighbour is enough to multiply the encoder's latency, and
the load average cannot tell the benchmark's own threads from someone else's. This compares the
whole machine's busy time (/proc/stat, Linux) with this process's own CPU time.
"""

import os
import resource
import time
from pathlib import Path

_STAT = Path("/proc/stat")


class OtherLoad:
    """Starts measuring when created; `share()` is the part of all cores others used since."""

    def __init__(self) -> None:
        self._wall = time.monotonic()
        self._busy = _machine_busy_seconds()
        self._own = _own_seconds()

    def share(self) -> float | None:
        busy = _machine_busy_seconds()
        if busy is None or self._busy is None:
            return None
        wall = time.monotonic() - self._wall
        others = (busy - self._busy) - (_own_seconds() - self._own)
        return max(0.0, others / (max(wall, 1e-9) * (os.cpu_count() or 1)))

    def describe(self) -> str:
        share = self.share()
        return "unknown" if share is None else f"{share:.0%}"


def _machine_busy_seconds() -> float | None:
    try:
        fields = _STAT.read_text(encoding="ascii").splitlines()[0].split()[1:9]
    except (OSError, IndexError):
        return None
    # user nice system idle iowait irq softirq steal; steal is a neighbour too (a VM's host).
    ticks = [int(field) for field in fields]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
