"""CPU time per OS thread of this process, so the bridge's own cost can be told apart from
the media sink's (in-process ASR decodes on threads of its own, in the same process)."""
from __future__ import annotations

import os

_TICK = os.sysconf("SC_CLK_TCK")


def thread_ids() -> set[int]:
    return {int(t) for t in os.listdir("/proc/self/task")}


def thread_cpu_seconds(tid: int) -> float | None:
    """User plus system CPU seconds of thread ``tid``; None once it has exited."""
    try:
        with open(f"/proc/self/task/{tid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except FileNotFoundError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15 of stat)


class ThreadGroupClock:
    """Summed CPU of a fixed set of threads; a thread that exits keeps its last reading."""

    def __init__(self, tids: set[int]):
        self._last = {tid: thread_cpu_seconds(tid) or 0.0 for tid in tids}

    def seconds(self) -> float:
        for tid in self._last:
            now = thread_cpu_seconds(tid)
            if now is not None:
                self._last[tid] = now
        return sum(self._last.values())
