"""The one clock: CRM_TODAY pins the day, read at every call."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm_store import clock


def test_today_follows_crm_today_set_after_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    assert clock.today() == date(2026, 11, 23)
    monkeypatch.setenv("CRM_TODAY", "2027-02-28")
    assert clock.today() == date(2027, 2, 28)


def test_today_without_crm_today_is_the_date_in_china(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_TODAY", raising=False)
    before = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    result = clock.today()
    after = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    assert result in {before, after}


def test_empty_crm_today_means_unpinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_TODAY", "")
    assert clock.today() == datetime.now(ZoneInfo("Asia/Shanghai")).date()


@pytest.mark.parametrize(
    "value", ["2026-13-01", "2026-02-30", "20261123", "23/11/2026", "tomorrow", "2026-11-23x"]
)
def test_today_rejects_malformed_crm_today(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CRM_TODAY", value)
    with pytest.raises(ValueError, match="CRM_TODAY"):
        clock.today()


def test_now_is_aware_shanghai_time_on_the_pinned_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    current = clock.now()
    assert current.date() == date(2026, 11, 23)
    assert current.utcoffset() == timedelta(hours=8)
    wall = datetime.now(ZoneInfo("Asia/Shanghai"))
    same_day = current.replace(year=wall.year, month=wall.month, day=wall.day)
    assert abs((same_day - wall).total_seconds()) < 60
