"""When people are at work: hand-offs wait for them, and complaint deadlines count from them."""

from datetime import datetime, time, timedelta
from typing import Final

from crm_store import clock

SERVICE_HOURS: Final = (time(9), time(21))
"""When people answer hand-offs, every day, Beijing time: from 9:00 until (not including) 21:00.

Public holidays are not modelled: staff on duty those days answer within the same hours."""


def next_service_time(now: datetime) -> datetime | None:
    """None when `now` is within `SERVICE_HOURS`; otherwise the next opening time in Asia/Shanghai.

    Raises:
        ValueError: `now` is naive.
    """
    if now.tzinfo is None:
        raise ValueError("now 必须带时区")
    local = now.astimezone(clock.TZ)
    opening, closing = SERVICE_HOURS
    if opening <= local.time() < closing:
        return None
    day = local.date() if local.time() < opening else local.date() + timedelta(days=1)
    return datetime.combine(day, opening, tzinfo=clock.TZ)
