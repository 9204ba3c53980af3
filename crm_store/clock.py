"""The one clock of the CRM: every "today" and "now" comes from here.

`CRM_TODAY=YYYY-MM-DD` pins the date for demos and tests (the demo fixture's day is 2026-11-23).
It is read at every call, so a test can set it with `monkeypatch.setenv` after import.
"""

import os
import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
TODAY_ENV = "CRM_TODAY"

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def today() -> date:
    """Today's date in China, or the date pinned by `CRM_TODAY`.

    Raises:
        ValueError: If `CRM_TODAY` is set but is not a valid YYYY-MM-DD date.
    """
    pinned = os.environ.get(TODAY_ENV, "").strip()
    if not pinned:
        return datetime.now(TZ).date()
    # date.fromisoformat alone would also accept forms such as 20261123 or 2026-W48-1.
    if _ISO_DATE.fullmatch(pinned):
        try:
            return date.fromisoformat(pinned)
        except ValueError:
            pass
    raise ValueError(f"{TODAY_ENV}={pinned!r} is not a valid date: expected YYYY-MM-DD, e.g. 2026-11-23")


def now() -> datetime:
    """The current wall time in Asia/Shanghai, on the date given by `today()`."""
    wall = datetime.now(TZ)
    return datetime.combine(today(), wall.timetz())
