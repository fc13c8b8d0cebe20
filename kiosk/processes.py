"""Whether a process on this host still runs: how the kiosk tells a crashed writer from a live one."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, just someone else's
        return True
    return True


def process_start(pid: int) -> int | None:
    """When the process started (clock ticks since boot; Linux), so a reused pid is not taken for it; None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces and brackets: fields follow the last ')'
    return int(fields[19])  # field 22 of proc(5), counted from the state (field 3)


def owner() -> dict[str, object]:
    """This process, as recorded on work another process may find half-done (with the priority it ran at)."""
    record: dict[str, object] = {"host": socket.gethostname(), "pid": os.getpid(), "nice": os.nice(0)}
    if hasattr(os, "SCHED_IDLE"):
        record["idle"] = os.sched_getscheduler(0) == os.SCHED_IDLE
    start = process_start(os.getpid())
    if start is not None:
        record["start"] = start
    return record


def owner_gone(record: object) -> bool:
    """True unless the record names a process on this host that is still running.

    A record from another host (a multi-door site on one database) cannot be checked from
    here, so it counts as still running: only the host that started the work abandons it.
    A live pid that started at another time than recorded is another process that reused it.
    """
    if not isinstance(record, dict) or "pid" not in record:
        return True
    if record.get("host") != socket.gethostname():
        return False
    pid = int(record["pid"])
    if not process_alive(pid):
        return True
    start = process_start(pid)
    return "start" in record and start is not None and start != record["start"]
