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
        TypeError: `now` is naive.
    """
    if now.tzinfo is None:
        # A programming error, not a refusal of the CRM's rules: every time of the CRM is aware
        # (`crm_store.clock`), so a naive one means the caller built it wrongly. TypeError, as
        # Python itself raises when it meets a naive time among aware ones.
        raise TypeError("naive datetime: next_service_time needs a timezone-aware time")
    local = now.astimezone(clock.TZ)
    opening, closing = SERVICE_HOURS
    if opening <= local.time() < closing:
        return None
    day = local.date() if local.time() < opening else local.date() + timedelta(days=1)
    return datetime.combine(day, opening, tzinfo=clock.TZ)
