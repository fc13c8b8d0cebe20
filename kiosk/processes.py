"""Whether a process on this host still runs: how the kiosk tells a crashed writer from a live one."""

from __future__ import annotations

import os
import socket


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, just someone else's
        return True
    return True


def owner() -> dict[str, object]:
    """This process, as recorded on work another process may find half-done (with the niceness it ran at)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "nice": os.nice(0)}


def owner_gone(record: object) -> bool:
    """True unless the record names a process on this host that is still running.

    A record from another host (a multi-door site on one database) cannot be checked from
    here, so it counts as still running: only the host that started the work abandons it.
    """
    if not isinstance(record, dict) or "pid" not in record:
        return True
    if record.get("host") != socket.gethostname():
        return False
    return not process_alive(int(record["pid"]))
