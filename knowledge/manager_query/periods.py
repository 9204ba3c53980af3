"""Time ranges of a manager's question → closed `Period`s, by the contract of crm_store/analytics/spec.py.

With today 2026-11-23 (a Monday): 本月 = 11-01..11-23 (to today), 上个月 = 10-01..10-31, 本周 =
11-23..11-23 (Monday first), 上周 = 11-16..11-22, 本季度 = 10-01..11-23, 今年 = 01-01..11-23, 去年
= the whole of 2025, 最近7天 = 11-17..11-23 (today included). An explicit past month, quarter or
year is the whole of it, a current one runs to today; one without a year that has not begun yet
this year is last year's ("12月" said in November 2026 is December 2025). Numbers are digits or
汉字 (近三十天, 三季度).

Words for all time (累计, 历史, 有史以来) give `ALL_TIME`: the question has no period.

The text is the parser's normalised form (NFKC, lower case, no spaces). Each match reports its
span so that the parser masks it: "前3天" is a period, not a top 3.
"""

import re
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

import cn2an

from crm_store.analytics.spec import Period
from knowledge.manager_query.texts import render

__all__ = ["ALL_TIME", "MASK", "PeriodMention", "cn_int", "find_periods", "month_to_date"]

MASK: Final = "\u3000"
"""What stands in for characters already taken (same length, matches no rule)."""

NUM: Final = r"(?:\d+|[零〇一二两三四五六七八九十百]+)"
_YEAR: Final = r"(?:\d{4}年|今年|去年|前年|明年)"
_DAY: Final = rf"(?:{_YEAR}?{NUM}月{NUM}[日号]|\d{{4}}[-/.]\d{{1,2}}[-/.]\d{{1,2}})"
_MONTH: Final = rf"(?:{_YEAR}?{NUM}月份?)"
_SEP: Final = r"(?:到|至|~|～|-|—|–)"
_TO_TODAY: Final = r"(?:以来|至今|到现在|到今天|到目前|到目前为止|开始|起)"


class _AllTime:
    """The marker of "累计 / 历史": the question asks over all time (no period)."""

    def __repr__(self) -> str:
        return "ALL_TIME"


ALL_TIME: Final = _AllTime()


@dataclass(frozen=True)
class PeriodMention:
    start: int
    end: int
    period: Period | _AllTime


def cn_int(text: str) -> int:
    """A number written in digits or 汉字 (三十, 两, 十一)."""
    if text.isdigit():
        return int(text)
    return int(cn2an.cn2an(text.replace("两", "二").replace("〇", "零"), "smart"))


def _month_end(year: int, month: int) -> date:
    return date(year, month, monthrange(year, month)[1])


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def _span_label(start: date, end: date) -> str:
    if start == end:
        return render("period.day", year=start.year, month=start.month, day=start.day)
    key = "period.span_same_year" if start.year == end.year else "period.span"
    return render(
        key,
        year=start.year,
        month=start.month,
        day=start.day,
        end_year=end.year,
        end_month=end.month,
        end_day=end.day,
    )


def _capped(start: date, end: date, today: date) -> tuple[date, date, bool]:
    """The range cut at today when it is still running (its end is in the future)."""
    if start <= today < end:
        return start, today, True
    return start, end, False


def month_period(year: int, month: int, today: date) -> Period:
    start, end, running = _capped(date(year, month, 1), _month_end(year, month), today)
    if running:
        return Period(start, end, render("period.month_to_date", year=year, month=month, end_day=end.day))
    return Period(start, end, render("period.month", year=year, month=month))


def month_to_date(today: date) -> Period:
    """本月: the default period of flow metrics."""
    return month_period(today.year, today.month, today)


def quarter_period(year: int, quarter: int, today: date) -> Period:
    first = date(year, 3 * quarter - 2, 1)
    start, end, running = _capped(first, _month_end(year, 3 * quarter), today)
    if running:
        label = render(
            "period.quarter_to_date", year=year, quarter=quarter, end_month=end.month, end_day=end.day
        )
        return Period(start, end, label)
    return Period(start, end, render("period.quarter", year=year, quarter=quarter))


def year_period(year: int, today: date) -> Period:
    start, end, running = _capped(date(year, 1, 1), date(year, 12, 31), today)
    if running:
        return Period(
            start, end, render("period.year_to_date", year=year, end_month=end.month, end_day=end.day)
        )
    return Period(start, end, render("period.year", year=year))


def _days(start: date, end: date) -> Period:
    return Period(start, end, _span_label(start, end))


def _year_word(word: str | None, today: date) -> int | None:
    if not word:
        return None
    if word[0].isdigit():
        return int(word[:4])
    return today.year + {"今年": 0, "去年": -1, "前年": -2, "明年": 1}[word]


def _past_year(month: int, year: int | None, today: date) -> int:
    """The year of a month said without one: this year's unless it has not begun yet."""
    if year is not None:
        return year
    return today.year if month <= today.month else today.year - 1


_DAY_PARTS: Final = re.compile(
    rf"(?:({_YEAR}))?({NUM})月({NUM})[日号]|(\d{{4}})[-/.](\d{{1,2}})[-/.](\d{{1,2}})"
)
_MONTH_PARTS: Final = re.compile(rf"(?:({_YEAR}))?({NUM})月份?")


def _parse_day(text: str, today: date, *, year: int | None = None, month: int | None = None) -> date | None:
    """A day: 11月1日, 2026年11月1日, 2026-11-01; a bare 15日 takes `month` (the range's first)."""
    match = _DAY_PARTS.fullmatch(text)
    try:
        if match is not None and match.group(4):
            return date(int(match.group(4)), int(match.group(5)), int(match.group(6)))
        if match is not None:
            said_month = cn_int(match.group(2))
            said_year = _year_word(match.group(1), today) or year
            day = cn_int(match.group(3))
            if said_year is None:
                said_year = today.year if date(today.year, said_month, day) <= today else today.year - 1
            return date(said_year, said_month, day)
        bare = re.fullmatch(rf"({NUM})[日号]", text)
        if bare is not None and month is not None and year is not None:
            return date(year, month, cn_int(bare.group(1)))
    except ValueError:
        return None
    return None


def _month_of(text: str, today: date, *, year: int | None = None) -> tuple[int, int] | None:
    match = _MONTH_PARTS.fullmatch(text)
    if match is None:
        return None
    month = cn_int(match.group(2))
    if not 1 <= month <= 12:
        return None
    return _past_year(month, _year_word(match.group(1), today) or year, today), month


Resolver = Callable[[re.Match[str], date], Period | _AllTime | None]


def _day_range(match: re.Match[str], today: date) -> Period | None:
    first = _parse_day(match.group(1), today)
    if first is None:
        return None
    last = _parse_day(match.group(2), today, year=first.year, month=first.month)
    if last is None or last < first:
        return None
    return _days(first, min(last, today) if first <= today else last)


def _month_range(match: re.Match[str], today: date) -> Period | None:
    first = _month_of(match.group(1), today)
    if first is None:
        return None
    last = _month_of(match.group(2), today, year=first[0])
    if last is None:
        bare = re.fullmatch(rf"({NUM})月份?", match.group(2))
        if bare is None:
            return None
        last = (first[0], cn_int(bare.group(1)))
    if last < first:
        return None
    start = date(first[0], first[1], 1)
    end = min(_month_end(*last), max(today, start))
    return _days(start, end)


def _since(match: re.Match[str], today: date) -> Period | None:
    said = match.group(1)
    first = _parse_day(said, today)
    if first is None:
        month = _month_of(said, today)
        first = date(month[0], month[1], 1) if month else None
    if first is None or first > today:
        return None
    return _days(first, today)


def _recent(match: re.Match[str], today: date) -> Period | None:
    count_word, unit = match.group(1), match.group(2)
    if count_word == "半":
        if unit in ("个月", "月"):
            return Period(today - timedelta(days=14), today, render("period.recent_days", count=15))
        if unit == "年":
            start = _add_months(today, -6) + timedelta(days=1)
            return Period(start, today, render("period.recent_months", count=6))
        return None
    count = cn_int(count_word)
    if count < 1:
        return None
    if unit in ("天", "日"):
        return Period(today - timedelta(days=count - 1), today, render("period.recent_days", count=count))
    if unit in ("周", "星期", "个星期", "礼拜", "个礼拜"):
        return Period(
            today - timedelta(days=7 * count - 1), today, render("period.recent_weeks", count=count)
        )
    months = {"个月": 1, "月": 1, "个季度": 3, "季度": 3, "年": 12}[unit]
    start = _add_months(today, -months * count) + timedelta(days=1)
    key = "period.recent_years" if unit == "年" else "period.recent_months"
    return Period(start, today, render(key, count=count if unit == "年" else months * count))


def _quarter(match: re.Match[str], today: date) -> Period | None:
    year_word, number = match.group(1), match.group(2) or match.group(3)
    quarter = cn_int(number)
    if not 1 <= quarter <= 4:
        return None
    year = _year_word(year_word, today)
    if year is None:
        year = today.year if date(today.year, 3 * quarter - 2, 1) <= today else today.year - 1
    return quarter_period(year, quarter, today)


def _half(match: re.Match[str], today: date) -> Period | None:
    year = _year_word(match.group(1), today)
    first = match.group(2) == "上半年"
    if year is None:
        year = today.year if first or today.month >= 7 else today.year - 1
    start, end = (date(year, 1, 1), date(year, 6, 30)) if first else (date(year, 7, 1), date(year, 12, 31))
    start, end, _ = _capped(start, end, today)
    return Period(
        start, end, render("period.half", year=year, half=render(f"half.{'first' if first else 'second'}"))
    )


def _month(match: re.Match[str], today: date) -> Period | None:
    found = _month_of(match.group(0), today)
    return month_period(found[0], found[1], today) if found else None


def _year(match: re.Match[str], today: date) -> Period | None:
    return year_period(int(match.group(1)), today)


def _day(match: re.Match[str], today: date) -> Period | None:
    day = _parse_day(match.group(0), today)
    return _days(day, day) if day else None


def _relative(words: str) -> Callable[[date], Period]:
    """A named period (本月, 上周 …) as a function of today."""

    def week_of(today: date, weeks_back: int) -> Period:
        monday = today - timedelta(days=today.weekday() + 7 * weeks_back)
        end = min(monday + timedelta(days=6), today)
        return _days(monday, end)

    def month_back(today: date, months: int) -> Period:
        first = _add_months(today.replace(day=1), -months)
        return month_period(first.year, first.month, today)

    def quarter_back(today: date, quarters: int) -> Period:
        index = today.year * 4 + (today.month - 1) // 3 - quarters
        return quarter_period(index // 4, index % 4 + 1, today)

    table: dict[str, Callable[[date], Period]] = {
        "today": lambda t: _days(t, t),
        "yesterday": lambda t: _days(t - timedelta(days=1), t - timedelta(days=1)),
        "day_before": lambda t: _days(t - timedelta(days=2), t - timedelta(days=2)),
        "this_week": lambda t: week_of(t, 0),
        "last_week": lambda t: week_of(t, 1),
        "week_before": lambda t: week_of(t, 2),
        "this_month": lambda t: month_back(t, 0),
        "last_month": lambda t: month_back(t, 1),
        "month_before": lambda t: month_back(t, 2),
        "next_month": lambda t: month_back(t, -1),
        "this_quarter": lambda t: quarter_back(t, 0),
        "last_quarter": lambda t: quarter_back(t, 1),
        "quarter_before": lambda t: quarter_back(t, 2),
        "next_quarter": lambda t: quarter_back(t, -1),
        "this_year": lambda t: year_period(t.year, t),
        "last_year": lambda t: year_period(t.year - 1, t),
        "year_before": lambda t: year_period(t.year - 2, t),
        "next_year": lambda t: year_period(t.year + 1, t),
    }
    return table[words]


_NAMED: Final[tuple[tuple[str, str], ...]] = (
    ("上上个月|上上月", "month_before"),
    ("上个月份?|上一个月|上月", "last_month"),
    ("下个月|下一个月|下月", "next_month"),
    ("本月份?|这个月份?|这一个月|这月|当月|月初至今|本月以来|这个月以来", "this_month"),
    ("上上个?季度|上上季", "quarter_before"),
    ("上个?季度|上一个?季度|上季", "last_quarter"),
    ("下个?季度|下一个?季度|下季", "next_quarter"),
    ("本季度|这个季度|这季度|这一季度|本季|当季|当前季度", "this_quarter"),
    ("上上周|上上个星期|上上星期|上上个礼拜|上上礼拜", "week_before"),
    ("上周|上个星期|上星期|上个礼拜|上礼拜|上一周|上个周", "last_week"),
    ("本周|这周|这个星期|这星期|本星期|这礼拜|这个礼拜|本礼拜|这一周|当周", "this_week"),
    ("今年以来|今年至今|年初至今|今年|本年度|本年|这一年|当年", "this_year"),
    ("去年全年|去年一整年|去年一年|去年|上一年|上年度|上年", "last_year"),
    ("前年", "year_before"),
    ("明年", "next_year"),
    ("今天|今日|当天|当日", "today"),
    ("昨天|昨日", "yesterday"),
    ("前天", "day_before"),
)

_ALL_TIME_WORDS: Final = re.compile(
    r"累计|累积|历史|有史以来|迄今为止|成立以来|所有时间|全部时间|历年|至今为止|总共"
)


def _named(key: str) -> Resolver:
    def resolve(_: re.Match[str], today: date) -> Period:
        return _relative(key)(today)

    return resolve


def _quarter_q(match: re.Match[str], today: date) -> Period | None:
    if match.group(4):  # 2025年Q4, 今年q1
        year = _year_word(match.group(3), today)
        quarter = int(match.group(4))
        if year is None:
            year = today.year if date(today.year, 3 * quarter - 2, 1) <= today else today.year - 1
        return quarter_period(year, quarter, today)
    return _quarter(match, today)


_RULES: Final[tuple[tuple[re.Pattern[str], Resolver], ...]] = (
    (re.compile(rf"(?:从)?({_DAY}){_SEP}({_DAY}|{NUM}[日号])"), _day_range),
    (re.compile(rf"(?:从)?({_MONTH}){_SEP}({_MONTH})"), _month_range),
    (re.compile(rf"(?:从|自)?({_DAY}|{_MONTH}){_TO_TODAY}"), _since),
    (
        re.compile(
            rf"(?:最近|最后|近|过去|这|前)({NUM}|半)(天|日|个星期|星期|个礼拜|礼拜|周|个月|个季度|季度|年)(?!度|份)"
        ),
        _recent,
    ),
    (re.compile(rf"({_YEAR})?第?({NUM})季度|({_YEAR}|\d{{4}})?q([1-4])"), _quarter_q),
    (re.compile(rf"({_YEAR})?(上半年|下半年)"), _half),
    (re.compile(_DAY), _day),
    (re.compile(_MONTH), _month),
    (re.compile(r"(\d{4})年(?:度|全年|一整年)?"), _year),
    *((re.compile(words), _named(key)) for words, key in _NAMED),
)


def find_periods(text: str, *, today: date) -> list[PeriodMention]:
    """Every time range of `text` in order of position.

    Characters the parser already took are masked with U+3000 and never match. A bare "最近/近期"
    without a number is no period.
    """
    work = list(text)
    found: list[PeriodMention] = []
    for pattern, resolve in _RULES:
        for match in pattern.finditer("".join(work)):
            try:
                resolved = resolve(match, today)
            except (OverflowError, ValueError):  # "最近99999999天": before the calendar starts
                resolved = None
            if resolved is None:
                continue
            found.append(PeriodMention(match.start(), match.end(), resolved))
            work[match.start() : match.end()] = MASK * (match.end() - match.start())
    for match in _ALL_TIME_WORDS.finditer("".join(work)):
        found.append(PeriodMention(match.start(), match.end(), ALL_TIME))
    return sorted(found, key=lambda mention: mention.start)
