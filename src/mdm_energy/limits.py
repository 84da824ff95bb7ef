"""Size limits checked before work starts: refuse what cannot fit in memory or time, with the estimate in the message.

Every command that allocates in proportion to a number the user gives (steps, samples, examples, batch,
model width) estimates the bytes it will need and calls :func:`check_memory` first, so a size that
cannot fit is refused in milliseconds with one line instead of swapping, being killed, or failing
half-way. The estimates are deliberately generous upper bounds (Python objects, JSON text, temporaries).

Sizes are Python integers throughout, so that a size a user types (any number of digits) never overflows
before it is compared with a limit: estimates are products of exact integers, :func:`format_bytes` and
:func:`format_count` print any integer, and :func:`power_exceeds` compares a count of states
``base ** exponent`` with a limit without computing the power.
"""

from __future__ import annotations

import math
import os
from decimal import Decimal

__all__ = ["MAX_STEPS", "MAX_LENGTH", "MAX_WORKERS_PER_CPU", "MAX_SECONDS", "STORAGE_PATIENCE", "MAX_STORAGE_PATIENCE",
           "available_memory", "format_bytes", "format_count", "power_exceeds", "format_power", "check_memory",
           "check_time", "check_workers"]

#: No sampler, schedule table or exact law takes more steps than this: a million model calls per sequence
#: is days of compute for any model, and the per-step tables would only be noise.
MAX_STEPS = 1_000_000
#: The longest sequence whose per-step counts are computed: beyond it double precision cannot hold them exactly.
MAX_LENGTH = 10**15
#: Worker processes beyond this many per CPU core only compete for the cores.
MAX_WORKERS_PER_CPU = 4
#: The longest a single computation that reports no progress may be estimated to take.
MAX_SECONDS = 600.0
#: Seconds a tuning worker rides out a lost database server before it gives up (``--storage-patience``).
STORAGE_PATIENCE = 60.0
#: The longest storage patience accepted: a day (a worker that should wait longer is better restarted).
MAX_STORAGE_PATIENCE = 86_400.0
#: Share of the available memory one command may plan to use.
MEMORY_SHARE = 0.8


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable`` on Linux; else free physical pages)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def format_count(n: "int | float") -> str:
    """``n`` for a message: with thousands separators up to 10^15, else as ``1.23e+400`` — exact for any
    Python integer (a float conversion would overflow beyond 1e308)."""
    if isinstance(n, int) and abs(n) < 10**15:
        return f"{n:,}"
    return f"{Decimal(n):.3g}" if isinstance(n, int) else f"{n:.3g}"


def format_bytes(n: "int | float") -> str:
    """``n`` bytes in B/KB/MB/GB/TB/PB; any size (an integer too large for a float included)."""
    if isinstance(n, int) and abs(n) >= 1024**6:  # petabytes and beyond: exact integer arithmetic
        return f"{format_count(n // 1024**5)} PB"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"  # pragma: no cover


def power_exceeds(base: int, exponent: int, limit: int) -> bool:
    """Whether ``base ** exponent > limit``, for integers ``base >= 1``, ``exponent >= 0`` of any size, without
    computing the power (or a logarithm that overflows): at most ``log2(limit)`` exact multiplications."""
    if base == 1 or exponent == 0:
        return 1 > limit
    value = 1
    for _ in range(exponent):
        value *= base
        if value > limit:
            return True
    return False


def format_power(base: int, exponent: int) -> str:
    """``base ** exponent`` for a message: exact below 10^15, else ``10^1600`` (by a logarithm in decimal
    arithmetic, so any size prints — a float would overflow)."""
    exp10 = Decimal(exponent) * Decimal(math.log10(base))
    if exp10 < 15:
        return format_count(base**exponent)
    return f"10^{exp10:.4g}"


def check_memory(nbytes: "int | float", what: str) -> None:
    """Raise ``ValueError`` if ``what`` is estimated to need more than :data:`MEMORY_SHARE` of the free memory.

    ``nbytes`` should be an exact integer product of the sizes (Python compares an integer of any size with a
    float exactly); a float estimate that overflowed to ``inf`` or is ``nan`` is refused too."""
    avail = available_memory()
    if isinstance(nbytes, float) and not math.isfinite(nbytes):
        raise ValueError(f"{what} needs more memory than can be counted; use a smaller size")
    if nbytes > MEMORY_SHARE * avail:
        raise ValueError(f"{what} needs about {format_bytes(nbytes)} of memory, more than the "
                         f"{format_bytes(avail)} available here; use a smaller size")


def check_time(seconds: float, what: str) -> None:
    """Raise ``ValueError`` if ``what``, which reports no progress, is estimated to take over :data:`MAX_SECONDS`."""
    if seconds > MAX_SECONDS:
        raise ValueError(f"{what} would take about {seconds / 60:.0f} minutes (estimate), more than the "
                         f"{MAX_SECONDS / 60:.0f} a single exact computation may take; use fewer steps or a smaller law")


def check_workers(workers: int) -> int:
    """Refuse more worker processes than :data:`MAX_WORKERS_PER_CPU` per CPU core."""
    cpus = os.cpu_count() or 1
    if workers > MAX_WORKERS_PER_CPU * cpus:
        raise ValueError(f"workers {workers} exceeds {MAX_WORKERS_PER_CPU} per CPU core ({cpus} cores here); "
                         "more worker processes than cores only compete for them")
    return workers
