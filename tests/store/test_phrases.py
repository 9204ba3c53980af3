"""What a customer's words mean in the chat's forms: stopping, "no order", a problem, a category, a rating."""

import pytest

from crm_store.phrases import (
    describes_a_problem,
    means_no_order,
    named_category,
    parse_rating,
    thumbs_vote,
    wants_to_stop,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("算了", True), ("那我不投诉了", True), ("取消吧", True), ("快递还没到", False), ("", False)],
)
def test_wants_to_stop(text: str, expected: bool) -> None:
    assert wants_to_stop(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("没有", True), ("不涉及订单", True), ("无", True), ("SO202611180001", False), ("耳机那单", False)],
)
def test_means_no_order(text: str, expected: bool) -> None:
    assert means_no_order(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我要投诉", False),
        ("我要投诉！！！", False),
        ("投诉一下，差评", False),
        ("我要投诉，快递三天了还没送到", True),
        ("耳机没声", True),
        ("坏了", False),
    ],
)
def test_describes_a_problem_beyond_wanting_to_complain(text: str, expected: bool) -> None:
    assert describes_a_problem(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("是物流配送的问题", "物流配送"), ("其他", "其他"), ("产品质量和价格争议都有", None), ("对", None)],
)
def test_named_category_only_when_exactly_one(text: str, expected: str | None) -> None:
    assert named_category(text) == expected


@pytest.mark.parametrize(
    ("entity", "text", "expected"),
    [
        ("5", "", 5),
        ("4", "五星", 4),  # the button's entity wins
        (None, "给3分", 3),
        (None, "9分", None),
        (None, "五星好评", 5),
        (None, "两分吧", 2),
        (None, "非常满意", 5),
        (None, "很满意", 5),
        (None, "满分", 5),
        (None, "不满意", 1),
        (None, "很不满意", 1),
        (None, "太差了", 1),
        (None, "满意", 4),
        (None, "嗯", None),
    ],
)
def test_ratings_are_read_from_buttons_digits_and_words(
    entity: str | None, text: str, expected: int | None
) -> None:
    assert parse_rating(entity, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("👍", True), ("👍 有帮助", True), ("👎", False), ("好", None)]
)
def test_thumbs_vote(text: str, expected: bool | None) -> None:
    assert thumbs_vote(text) is expected
