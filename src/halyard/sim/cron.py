"""Cron schedules as CronJobs write them: five fields (``*``, ``*/n``, ``a-b``, ``a-b/n``, lists) and the
``@hourly``-style macros. Pure: :func:`next_after` is all the CronJob controller needs."""

from __future__ import annotations

import datetime as dt

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def _field(text: str, low: int, high: int) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base in ("*", "?"):
            first, last = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            first, last = int(a), int(b)
        else:
            first = int(base)
            last = high if step_text else first
        if not low <= first <= last <= high or step < 1:
            raise ValueError(f"{part!r} is out of range {low}-{high}")
        out.update(range(first, last + 1, step))
    return out


def parse(schedule: str) -> tuple[set[int], ...]:
    """(minutes, hours, days of month, months, days of week); raises ValueError for a bad schedule."""
    fields = _MACROS.get(schedule.strip(), schedule).split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields, got {len(fields)}")
    parsed = tuple(_field(f, lo, hi) for f, (lo, hi) in zip(fields, _RANGES, strict=True))
    if 7 in parsed[4]:
        parsed[4].add(0)
    return parsed


def next_after(schedule: str, after: dt.datetime) -> dt.datetime:
    """The first minute strictly after ``after`` that the schedule fires (UTC)."""
    minutes, hours, days, months, weekdays = parse(schedule)
    day_any = len(days) == 31
    weekday_any = len(weekdays) >= 7
    t = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    for _ in range(100_000):  # cron semantics: day-of-month OR day-of-week when both are restricted
        weekday = (t.weekday() + 1) % 7  # cron counts from Sunday
        if day_any or weekday_any:
            day_ok = t.day in days and weekday in weekdays
        else:
            day_ok = t.day in days or weekday in weekdays
        if t.month not in months:  # skip whole months, days and hours that cannot match
            t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
        elif not day_ok:
            t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
        elif t.hour not in hours:
            t = t.replace(minute=0) + dt.timedelta(hours=1)
        elif t.minute in minutes:
            return t
        else:
            t += dt.timedelta(minutes=1)
    raise ValueError(f"schedule {schedule!r} never fires")
