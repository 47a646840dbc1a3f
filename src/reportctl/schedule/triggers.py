"""When a schedule fires: cron fire times in the schedule's time zone, jitter, and which fires are due at a tick.

Everything here is pure: the caller passes the clock in (``after``, ``since``, ``now``), so a test never sleeps.

Daylight saving, decided by whether the cron's hour field is written with ``*`` (``0 * * * *``, ``*/15 */2 * * *``):

* A **wall-clock schedule** (a fixed hour, e.g. ``30 2 * * *``) fires once for every matching local date and time.
  A time that does not exist on the spring-forward day (02:30 in Europe/Berlin on 2026-03-29) fires once, at the
  first instant after the gap (03:00 local); a time that occurs twice on the fall-back day (02:30 on 2026-10-25)
  fires once, at its first occurrence (summer time, ``fold=0``). Fires that land on the same instant are one fire.
* An **interval schedule** (hour ``*``) fires at every real instant whose local clock reading matches, so an hourly
  cron fires 23 times on the spring-forward day (the missing hour is not made up) and 25 times on the fall-back day
  (the repeated hour fires at both of its instants): one fire per real hour, always an hour apart.

Jitter only delays (a report never starts before its data is due): a fire is planned at its scheduled time plus a
stable offset in [0, jitter), and it is due at a tick once its planned time has passed, so the tick windows
(since, now] partition planned times and no fire is due twice.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from reportctl.cron import parsed_cron

# Wall times earlier than the start's own can fire after it only when the clock is set back near the start; a day
# either side covers every daylight-saving change (historic date-line moves such as Samoa's in 2011 excepted).
_NEAR = timedelta(days=1)


@dataclass(frozen=True)
class Fire:
    """One fire of a schedule at a tick: when cron said, when jitter planned it, how late it is, whether it runs."""

    scheduled: datetime
    planned: datetime
    late: timedelta
    misfired: bool


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def is_interval_cron(cron: str) -> bool:
    """Whether the cron's hour field is a wildcard (``*`` or ``*/n``): it then fires by real time, not wall time."""
    return cron.split()[1].startswith("*")


def fire_times(
    cron: str,
    timezone: str,
    after: datetime,
    count: int | None = None,
    until: datetime | None = None,
) -> list[datetime]:
    """The cron's fire times strictly after ``after`` (up to ``until`` inclusive, or the first ``count``), in its zone.

    ``after`` and ``until`` must be aware; see the module docstring for daylight-saving changes.
    """
    from croniter import CroniterBadDateError

    if count is None and until is None:
        raise ValueError("fire_times needs a count or an until")
    if after.tzinfo is None or (until is not None and until.tzinfo is None):
        raise ValueError("fire_times needs aware datetimes")
    zone = _zone(timezone)
    interval = is_interval_cron(cron)
    # Aware datetimes that share a tzinfo compare and subtract by wall time, so all arithmetic happens in UTC.
    after_utc = after.astimezone(UTC)
    until_utc = until.astimezone(UTC) if until is not None else None
    start_wall = after_utc.astimezone(zone).replace(tzinfo=None, fold=0) - _wall_margin(after_utc, zone)
    walls = _cron_at(cron, start_wall)
    found: set[datetime] = set()
    while True:
        try:
            wall: datetime = walls.get_next(datetime)
        except CroniterBadDateError:  # a cron that never matches again, such as 0 0 30 2 *
            break
        instants = _instants(wall, zone, interval)
        # The earliest instant of a wall time never decreases as wall times increase, so once it is past the bound
        # no later wall time can add an earlier fire.
        if until_utc is not None and instants and instants[0] > until_utc:
            break
        if count is not None and len(found) >= count and instants and instants[0] > sorted(found)[count - 1]:
            break
        found.update(i for i in instants if i > after_utc and (until_utc is None or i <= until_utc))
    fires = sorted(found)[:count] if count is not None else sorted(found)
    return [f.astimezone(zone) for f in fires]


def _cron_at(cron: str, start_wall: datetime) -> Any:
    """A croniter for ``cron`` from ``start_wall``: a copy of the expression parsed once (parsing costs more than the
    next few fire times, and the daemon asks thousands of specs for theirs)."""
    parsed = parsed_cron(cron)
    if parsed is None:  # a spec's cron is checked when it is read; this is for a caller that skipped that
        raise ValueError(f"invalid cron expression '{cron}'")
    walls = copy.copy(parsed)
    walls.set_current(start_wall, force=True)
    return walls


def _wall_margin(instant: datetime, zone: ZoneInfo) -> timedelta:
    """How far before ``instant``'s wall time a wall time may lie and still fire after it: the setback nearby."""
    offsets = [(instant + d).astimezone(zone).utcoffset() or timedelta(0) for d in (-_NEAR, timedelta(0), _NEAR)]
    return offsets[1] - min(offsets)


def _instants(wall: datetime, zone: ZoneInfo, interval: bool) -> list[datetime]:
    """The instants (UTC, earliest first) at which the local wall time ``wall`` fires."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:  # an ordinary wall time
        return [first]
    if first < second:  # occurs twice (fall back): fold 0 is the earlier
        return [first, second] if interval else [first]
    # Does not exist (spring forward): fold=1 reads it with the offset after the gap, fold=0 with the one before, so
    # the gap runs from ``second`` to ``first``; its end is the first instant after it.
    return [] if interval else [_gap_end(second, first, zone)]


def _gap_end(low: datetime, high: datetime, zone: ZoneInfo) -> datetime:
    """The instant (UTC) at which the zone's clock jumps forward, between ``low`` and ``high``."""
    offset = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def jitter_offset(report: str, fire: datetime, jitter: timedelta) -> timedelta:
    """A whole-second delay in [0, jitter) from a sha256 of the report and the fire's UTC instant: stable on restart."""
    window = int(jitter.total_seconds())
    if window <= 0:
        return timedelta(0)
    key = f"{report}\0{fire.astimezone(UTC).isoformat()}".encode()
    draw = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    return timedelta(seconds=(draw * window) >> 64)


def planned_time(report: str, fire: datetime, jitter: timedelta) -> datetime:
    """When the fire of ``report`` scheduled at ``fire`` starts: its time plus its jitter offset, in its zone."""
    return (fire.astimezone(UTC) + jitter_offset(report, fire, jitter)).astimezone(fire.tzinfo)


def due_fires(
    cron: str,
    timezone: str,
    *,
    report: str,
    jitter: timedelta,
    since: datetime | None,
    now: datetime,
    misfire_grace: timedelta,
) -> list[Fire]:
    """The fires whose planned time is in (since, now] (no ``since``: the last ``misfire_grace``), oldest first.

    Only the latest may run, and only within ``misfire_grace`` of its planned time; the rest come back misfired.
    """
    now_utc = now.astimezone(UTC)
    start = since.astimezone(UTC) if since is not None else now_utc - misfire_grace
    if start >= now_utc:
        return []
    fires: list[Fire] = []
    for scheduled in fire_times(cron, timezone, start - max(jitter, timedelta(0)), until=now_utc):
        planned = planned_time(report, scheduled, jitter)
        if start < planned.astimezone(UTC) <= now_utc:
            fires.append(Fire(scheduled, planned, now_utc - planned.astimezone(UTC), misfired=True))
    if fires and fires[-1].late <= misfire_grace:
        fires[-1] = replace(fires[-1], misfired=False)
    return fires


__all__ = ["Fire", "due_fires", "fire_times", "is_interval_cron", "jitter_offset", "planned_time"]
