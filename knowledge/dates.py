"""Chinese date expressions of a visit note, resolved against the project clock.

A salesperson writes "昨天下午拜访了王芳，下周三把报价单发过去": two dates, one of the visit
(the past) and one of the next step (the future). `find_dates` finds every date expression in a
text with its position; `DateMention.resolve(direction)` gives its day.

What does the work:

- jionlp (`jio.ner.extract_time`, `jio.parse_time`) for most expressions: 今天, 昨天下午, 前天,
  大后天, 这周五, 下周二, 下下周一, 3天后, 两周后, 12月10号, 12/10, 下个月5号 … It prints a banner
  on import, which is swallowed here.
- Small rules (`_RULES`) for what jionlp lacks or reads oddly: 月底 / 月初 / 月中 (with 这个 / 下个 /
  上个), 年底, 今早 / 明早, 12.10, 下个月 alone, N个月后, 半个月后, 过几天, 刚才, and the English
  words a note mixes in (today, tomorrow, yesterday, next week).

The direction decides what jionlp cannot know:

- a bare weekday (周四, 星期四) means the last one for an event ("周四拜访了", never a day to come)
  and the coming one for a next step ("周四再联系", never a day gone): `past` → the latest such day
  on or before today, `future` → the first one after today;
- a bare day of the month (10号) or a month and day without a year (12月10号) move to the previous
  or the next month / year when they would otherwise point the wrong way;
- 月初 / 月中 said for a next step after that part of the month is over mean next month's.

A span is read as its first day ("下周" → next Monday, "两周后" → today + 14), except a deadline or an
end ("月底", "下周三前", "这周内", "年底"), read as its last day.
"""

import contextlib
import io
import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from types import ModuleType
from typing import Any, Final, Literal

import cn2an

__all__ = ["Direction", "DateMention", "find_dates", "resolve_date"]

Direction = Literal["past", "future"]

_CN_NUMBER: Final = "零〇一二两三四五六七八九十百"
_WEEKDAY_NAMES: Final = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 6}
_BARE_WEEKDAY: Final = re.compile(r"^(?:周|星期|礼拜)([一二三四五六日天1-7末])")
_DAY_ONLY: Final = re.compile(rf"^(?:[0-9]{{1,2}}|[{_CN_NUMBER}]{{1,3}})[号日]")
_MONTH_DAY: Final = re.compile(rf"^(?:[0-9]{{1,2}}|[{_CN_NUMBER}]{{1,3}})(?:月|/|-)")
_END_WORDS: Final = re.compile(r"(?:前|之前|以前|内|之内|以内|底|末)$|[底末]")
_PAST_WORDS: Final = re.compile(r"昨|前天|上周|上个|上礼拜|上星期|刚|去年|前几天|前两天|上月|大前天")
_MASK: Final = "\u3000"
_DEADLINE_SUFFIX: Final = re.compile(r"之内|以内|内|之前|以前|前")


@dataclass(frozen=True)
class DateMention:
    """One date expression in a text: where it is and how it reads in either direction."""

    text: str
    start: int
    end: int
    past: date
    """The day when the expression names an event that happened."""
    future: date
    """The day when the expression names something still to do."""
    weekday: int | None = None
    """0–6 for a bare weekday (周四), which a correction moves within its week."""

    @property
    def said_as_past(self) -> bool:
        """Whether the words themselves point back (昨天, 上周五, 刚才), whatever the clause."""
        return _PAST_WORDS.search(self.text) is not None

    def resolve(self, direction: Direction) -> date:
        return self.past if direction == "past" else self.future


@lru_cache(maxsize=1)
def _jionlp() -> ModuleType:
    # jionlp announces itself on stdout when imported; a CLI printing JSON must not show that.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import jionlp

    module: ModuleType = jionlp
    return module


def _number(text: str) -> int:
    if text.isdigit():
        return int(text)
    if text == "半":
        return 0
    return int(cn2an.cn2an(text.replace("两", "二"), "smart"))


def _add_months(day: date, months: int, *, day_of_month: int | None = None) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day_of_month if day_of_month is not None else day.day, last))


def _month_part(match: re.Match[str], today: date) -> tuple[date, date]:
    prefix, part = match.group(1) or "", match.group(2)
    shift = 1 if prefix.startswith("下") else -1 if prefix.startswith("上") else 0
    base = _add_months(today, shift, day_of_month=1)

    def pick(month_start: date) -> date:
        if part in "底末":
            return _add_months(month_start, 0, day_of_month=31)
        return month_start.replace(day=15) if part == "中" else month_start

    day = pick(base)
    future = day
    if not prefix and day < today:
        # "月初再联系" on the 23rd: the start of the coming month.
        future = pick(_add_months(base, 1))
    return day, future


def _year_part(match: re.Match[str], today: date) -> tuple[date, date]:
    year = today.year + (1 if match.group(1) and match.group(1)[0] in "明下" else 0)
    day = date(year, 12, 31) if match.group(2) in "底末" else date(year, 1, 1)
    return day, day


def _half_day(match: re.Match[str], today: date) -> tuple[date, date]:
    offset = {"今": 0, "明": 1, "昨": -1, "前": -2}[match.group(1)]
    day = today + timedelta(days=offset)
    return day, day


def _dotted(match: re.Match[str], today: date) -> tuple[date, date]:
    month, day_of_month = int(match.group(1)), int(match.group(2))
    day = date(today.year, month, min(day_of_month, monthrange(today.year, month)[1]))
    past = day if day <= today else _add_months(day, -12)
    future = day if day >= today else _add_months(day, 12)
    return past, future


def _whole_month(match: re.Match[str], today: date) -> tuple[date, date]:
    day = _add_months(today, 1 if match.group(1).startswith("下") else -1, day_of_month=1)
    return day, day


def _months_later(match: re.Match[str], today: date) -> tuple[date, date]:
    count = match.group(1)
    day = today + timedelta(days=15) if count == "半" else _add_months(today, _number(count))
    return day, day


def _few_days(_: re.Match[str], today: date) -> tuple[date, date]:
    day = today + timedelta(days=3)
    return day, day


def _just_now(_: re.Match[str], today: date) -> tuple[date, date]:
    return today, today


_ENGLISH_DAYS: Final = {"today": 0, "tonight": 0, "this morning": 0, "this afternoon": 0, "tomorrow": 1,
                        "yesterday": -1, "day after tomorrow": 2}  # fmt: skip


def _english(match: re.Match[str], today: date) -> tuple[date, date]:
    words = " ".join(match.group().lower().split())
    if words == "next week":
        day = today + timedelta(days=7 - today.weekday())
    else:
        day = today + timedelta(days=_ENGLISH_DAYS[words])
    return day, day


_Rule = tuple[re.Pattern[str], Any]
_RULES: Final[tuple[_Rule, ...]] = (
    (
        re.compile(rf"(?<![0-9{_CN_NUMBER}])(这个|本|下个|下|上个|上)?月(底|末|初|中)(?:前|之前)?"),
        _month_part,
    ),
    (re.compile(r"(今|明|下一?|这)?年(底|末|初)(?:前|之前)?"), _year_part),
    (re.compile(r"(今|明|昨|前)早(?:上|晨)?"), _half_day),
    (re.compile(r"(?<![0-9.])(1[0-2]|0?[1-9])\.(3[01]|[12][0-9]|0?[1-9])(?![0-9%万千百元块wWkK])"), _dotted),
    (re.compile(rf"(下个?|上个?)月(?![底末初中0-9{_CN_NUMBER}])"), _whole_month),
    (re.compile(rf"([0-9]+|[{_CN_NUMBER}]+|半)个?月(?:后|以后|之后)"), _months_later),
    (re.compile(r"过(?:几|两三|三五)天"), _few_days),
    (re.compile(r"刚才|刚刚"), _just_now),
    (
        re.compile(
            r"(?<![a-z])(?:day after tomorrow|today|tonight|this morning|this afternoon|tomorrow|yesterday|"
            r"next\s+week)(?![a-z])",
            re.IGNORECASE,
        ),
        _english,
    ),
)


def _jio_day(value: str) -> date | None:
    if value in ("inf", "-inf"):
        return None
    try:
        return datetime.strptime(value[:10], "%Y-%m-%d").date()
    except ValueError:
        return None


def _from_jionlp(text: str, entity: dict[str, Any], today: date) -> DateMention | None:
    detail = entity.get("detail") or {}
    if detail.get("type") not in ("time_point", "time_span"):
        return None  # durations ("两个小时") and frequencies are not dates
    bounds = detail.get("time") or []
    if len(bounds) != 2:
        return None
    start, end = entity["offset"]
    # "这周内", "下周三之前": jionlp leaves the deadline word out of the expression at times.
    deadline = _DEADLINE_SUFFIX.match(text, end)
    if deadline is not None:
        end = deadline.end()
    words = text[start:end]
    first, last = _jio_day(bounds[0]), _jio_day(bounds[1])
    day = last if (_END_WORDS.search(words) or first is None) else first
    if day is None:
        return None
    past = future = day
    weekday: int | None = None
    weekday_match = _BARE_WEEKDAY.match(words)
    if weekday_match is not None:
        name = weekday_match.group(1)
        weekday = int(name) - 1 if name.isdigit() else _WEEKDAY_NAMES[name]
        this_week = today - timedelta(days=today.weekday()) + timedelta(days=weekday)
        past = this_week if this_week <= today else this_week - timedelta(days=7)
        future = this_week if this_week > today else this_week + timedelta(days=7)
    elif _DAY_ONLY.match(words):
        past = day if day <= today else _add_months(day, -1)
        future = day if day >= today else _add_months(day, 1)
    elif _MONTH_DAY.match(words) and "年" not in words:
        past = day if day <= today else _add_months(day, -12)
        future = day if day >= today else _add_months(day, 12)
    return DateMention(text=words, start=start, end=end, past=past, future=future, weekday=weekday)


def find_dates(text: str, *, today: date) -> list[DateMention]:
    """Every date expression of `text`, in order of position, each resolvable either way.

    Times of day are read but dropped (a visit and a task have a date). Durations ("聊了两个小时")
    are not dates and are left out.
    """
    mentions: list[DateMention] = []
    masked = list(text)
    for pattern, resolve in _RULES:
        for match in pattern.finditer(text):
            if any(c == _MASK for c in masked[match.start() : match.end()]):
                continue  # inside an expression an earlier rule took
            past, future = resolve(match, today)
            mentions.append(
                DateMention(
                    text=match.group(), start=match.start(), end=match.end(), past=past, future=future
                )
            )
            masked[match.start() : match.end()] = _MASK * (match.end() - match.start())
    rest = "".join(masked)
    if rest.strip(_MASK + " "):
        now = datetime.combine(today, time(12, 0))
        try:
            entities = _jionlp().ner.extract_time(rest, time_base=now.timestamp(), with_parsing=True)
        except (ValueError, KeyError, TypeError, IndexError):  # jionlp refuses odd strings by raising
            entities = []
        for entity in entities:
            mention = _from_jionlp(text, entity, today)
            if mention is not None and _MASK not in rest[mention.start : mention.end]:
                mentions.append(mention)
    return sorted(mentions, key=lambda m: m.start)


def resolve_date(expression: str, *, today: date, direction: Direction = "future") -> date | None:
    """The day named by a date expression (its first one), or None when it names none.

    >>> resolve_date("下周二", today=date(2026, 11, 23))
    datetime.date(2026, 12, 1)
    """
    mentions = find_dates(expression, today=today)
    return mentions[0].resolve(direction) if mentions else None
