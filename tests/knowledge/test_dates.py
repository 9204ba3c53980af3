"""Relative Chinese dates against the demo day, Monday 2026-11-23, read as the past and the future."""

import subprocess
import sys
from datetime import date

import pytest

from knowledge.dates import find_dates, resolve_date

MONDAY = date(2026, 11, 23)


@pytest.mark.parametrize(
    ("expression", "past", "future"),
    [
        ("今天", "2026-11-23", "2026-11-23"),
        ("昨天下午", "2026-11-22", "2026-11-22"),
        ("前天", "2026-11-21", "2026-11-21"),
        # A bare weekday: the last one for an event, the coming one for a next step.
        ("周四", "2026-11-19", "2026-11-26"),
        ("星期一", "2026-11-23", "2026-11-30"),
        ("这周五", "2026-11-27", "2026-11-27"),
        ("下周二", "2026-12-01", "2026-12-01"),
        ("下下周一", "2026-12-07", "2026-12-07"),
        ("上周五", "2026-11-20", "2026-11-20"),
        ("月底", "2026-11-30", "2026-11-30"),
        # The start of this month is over: a next step "月初" is the coming month's.
        ("月初", "2026-11-01", "2026-12-01"),
        ("下个月底", "2026-12-31", "2026-12-31"),
        ("3天后", "2026-11-26", "2026-11-26"),
        ("三天后", "2026-11-26", "2026-11-26"),
        ("两周后", "2026-12-07", "2026-12-07"),
        ("12月10号", "2025-12-10", "2026-12-10"),
        ("12/10", "2025-12-10", "2026-12-10"),
        ("12.10", "2025-12-10", "2026-12-10"),
        ("10号", "2026-11-10", "2026-12-10"),
        ("下个月5号", "2026-12-05", "2026-12-05"),
        ("下个月", "2026-12-01", "2026-12-01"),
        ("明早", "2026-11-24", "2026-11-24"),
        ("今早", "2026-11-23", "2026-11-23"),
        ("大后天", "2026-11-26", "2026-11-26"),
        ("一个月后", "2026-12-23", "2026-12-23"),
        ("下周三前", "2026-12-02", "2026-12-02"),
        ("这周内", "2026-11-29", "2026-11-29"),
        ("年底", "2026-12-31", "2026-12-31"),
        ("tomorrow", "2026-11-24", "2026-11-24"),
        ("next week", "2026-11-30", "2026-11-30"),
    ],
)
def test_expression_resolves_both_ways(expression: str, past: str, future: str) -> None:
    assert resolve_date(expression, today=MONDAY, direction="past") == date.fromisoformat(past)
    assert resolve_date(expression, today=MONDAY, direction="future") == date.fromisoformat(future)


def test_every_date_of_a_sentence_is_found_with_its_position() -> None:
    text = "今天下午拜访了华峰科技的王芳，聊了二期报价，下周三把报价单发过去"
    mentions = find_dates(text, today=MONDAY)
    assert [m.text for m in mentions] == ["今天下午", "下周三"]
    assert [text[m.start : m.end] for m in mentions] == ["今天下午", "下周三"]
    assert mentions[1].resolve("future") == date(2026, 12, 2)


def test_durations_and_amounts_are_not_dates() -> None:
    assert find_dates("聊了两个小时，报价1.5万，要5台", today=MONDAY) == []
    assert resolve_date("没有日期", today=MONDAY) is None


def test_past_words_are_recognised() -> None:
    yesterday, next_week = find_dates("昨天见了，下周再说", today=MONDAY)
    assert yesterday.said_as_past and not next_week.said_as_past


def test_jionlp_banner_is_not_printed() -> None:
    # In a fresh interpreter: jionlp prints its banner only the first time it is imported.
    code = (
        "from datetime import date; from knowledge.dates import resolve_date; "
        "print(resolve_date('后天', today=date(2026, 11, 23)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "2026-11-25"
    assert "jionlp" not in done.stderr.lower()
