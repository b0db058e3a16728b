"""Settlement window schedule.

Exactly one window is OPEN at any time; every committed transfer is stamped with it in the
same transaction as its commit. A window closes on an operator's request or on a schedule:
at fixed local times of day (in the schedule's time zone) and/or every `interval_s`. Closing
opens the next window at the same instant, so transfers committed after the close belong to
the next window. This module only computes when the next scheduled close is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

INTERVAL_S_MIN = 1
INTERVAL_S_MAX = 7 * 24 * 3600
DAILY_TIMES_MAX = 48


@dataclass(frozen=True, slots=True)
class CloseSchedule:
    daily_at: tuple[time, ...] = ()
    interval_s: int | None = None
    tz: str = "Asia/Hong_Kong"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.tz!r}") from None
        if len(self.daily_at) > DAILY_TIMES_MAX:
            raise ValueError(f"at most {DAILY_TIMES_MAX} daily close times")
        if self.interval_s is not None and not INTERVAL_S_MIN <= self.interval_s <= INTERVAL_S_MAX:
            raise ValueError(f"interval_s must be in [{INTERVAL_S_MIN}, {INTERVAL_S_MAX}]")

    def due_at(self, opened_at: datetime) -> datetime | None:
        """When the window opened at `opened_at` should close; None if never. A time already
        past (the gateway was down) means the window is due now."""
        candidates: list[datetime] = []
        if self.interval_s is not None:
            candidates.append(opened_at + timedelta(seconds=self.interval_s))
        if self.daily_at:
            zone = ZoneInfo(self.tz)
            local = opened_at.astimezone(zone)
            for day in (local.date(), local.date() + timedelta(days=1)):
                for t in sorted(self.daily_at):
                    at = datetime.combine(day, t, tzinfo=zone)
                    if at > local:
                        candidates.append(at.astimezone(opened_at.tzinfo))
                        break
                else:
                    continue
                break
        return min(candidates) if candidates else None
