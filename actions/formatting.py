"""How dates and other values are written in replies to customers."""

from datetime import date, datetime

from crm_store import clock

_WEEKDAYS = "一二三四五六日"
_RELATIVE_DAYS = {-1: "昨天", 0: "今天", 1: "明天", 2: "后天"}


def cn_date(day: date, *, today: date) -> str:
    """`2026年11月24日（明天，周二）`: the full date, so there is no doubt, with a relative hint."""
    weekday = f"周{_WEEKDAYS[day.weekday()]}"
    relative = _RELATIVE_DAYS.get((day - today).days)
    hint = f"{relative}，{weekday}" if relative else weekday
    return f"{day.year}年{day.month}月{day.day}日（{hint}）"


def cn_time(moment: datetime) -> str:
    """`11月24日 13:00` in Beijing time: deadlines and when a person will answer."""
    local = moment.astimezone(clock.TZ)
    return f"{local.month}月{local.day}日 {local:%H:%M}"
