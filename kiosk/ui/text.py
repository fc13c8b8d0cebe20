"""Small formatting shared by the screens, so times and probabilities read the same everywhere."""

from __future__ import annotations

from datetime import datetime, tzinfo


def when(value: datetime | None, tz: tzinfo | None, seconds: bool = True) -> str:
    """A stored UTC time in the admin's zone (tz None: the machine's local zone)."""
    if value is None:
        return "-"
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def prob(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def windows(spec: list[dict[str, object]] | None) -> str:
    """Weekly access windows as 'Mo-Fr 08:00-18:00'; empty means any time."""
    if not spec:
        return "any time"
    names = "Mo Tu We Th Fr Sa Su".split()
    parts = []
    for w in spec:
        days = sorted(int(d) for d in w.get("days", []))  # type: ignore[union-attr]
        if days and days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
            label = f"{names[days[0]]}-{names[days[-1]]}"
        else:
            label = ",".join(names[d] for d in days)
        parts.append(f"{label} {w.get('start', '')}-{w.get('end', '')}")
    return "; ".join(parts)


def event_reason(reason: str, liveness: float | None, details: dict[str, object] | None = None) -> str:
    """An event's reason with the liveness score and the check that refused, where one ran (issue 14)."""
    if liveness is None:
        return reason
    check = (details or {}).get("liveness_check")
    return f"{reason} (liveness {liveness:.2f}{f', {check} check' if check else ''})"
