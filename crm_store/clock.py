"""The one clock of the CRM: every "today" and "now" comes from here.

`CRM_TODAY=YYYY-MM-DD` pins the date for demos and tests (the demo fixture's day is 2026-11-23).
It is read at every call (`StoreSettings.today`), so a test can set it with `monkeypatch.setenv`
after import.
"""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from crm_store.settings import get_store_settings

TZ = ZoneInfo("Asia/Shanghai")
TODAY_ENV = "CRM_TODAY"


def today() -> date:
    """Today's date in China, or the date pinned by `CRM_TODAY`.

    Raises:
        ValueError: If `CRM_TODAY` is set but is not a valid YYYY-MM-DD date.
    """
    pinned = get_store_settings().today
    return pinned if pinned is not None else datetime.now(TZ).date()


def now() -> datetime:
    """The current wall time in Asia/Shanghai, on the date given by `today()`."""
    wall = datetime.now(TZ)
    return datetime.combine(today(), wall.timetz())


def crm_time(instant: datetime) -> datetime:
    """A real instant (e.g. when a chat message was sent) on the CRM's calendar, in Asia/Shanghai.

    Moved by as many days as `today()` is from the real date, so that it lands where `now()` puts
    the present: a message sent two minutes ago is two minutes before `now()`, on the pinned day.
    Without `CRM_TODAY` this is the instant itself.

    Raises:
        TypeError: `instant` is naive (a programming error: a real instant has a timezone).
        ValueError: As `today()`.
    """
    if instant.tzinfo is None:
        raise TypeError("naive datetime: crm_time needs a timezone-aware instant")
    shift = today() - datetime.now(TZ).date()
    return instant.astimezone(TZ) + timedelta(days=shift.days)
