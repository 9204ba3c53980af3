"""Masking and pseudonyms: what replies and logs may show of a phone, a name, a conversation."""

import re

import pytest

from crm_store.privacy import (
    conversation_key,
    mask_name,
    mask_phone,
    mask_text,
    normalise_phone,
    phone_key,
)


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("18201164104", "182****4104"),
        ("+86 182 0116 4104", "182****4104"),
        ("182-0116-4104", "182****4104"),
        ("１８２０１１６４１０４", "182****4104"),
        ("01012345678", "010****5678"),  # any 11 digits are masked alike
        ("1820116410", "***"),
        ("182011641045", "***"),
        ("1820116410a", "***"),
        ("", "***"),
        (None, "***"),
        ("1" * 10_000, "***"),
    ],
)
def test_mask_phone(phone: str | None, masked: str) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张伟", "张*"),
        ("王小明", "王**"),
        ("欧阳娜娜", "欧阳**"),
        ("司马光", "司马*"),
        (" 李娜 ", "李*"),
        ("李", "*"),
        ("", "***"),
        (None, "***"),
    ],
)
def test_mask_name_keeps_only_the_surname(name: str | None, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    "typed",
    [
        "18201164104",
        "182 0116 4104",
        "182-0116-4104",
        "+86 18201164104",
        "0086-182-0116-4104",
        "８６１８２０１１６４１０４",
    ],
)
def test_normalise_phone_accepts_typed_forms(typed: str) -> None:
    assert normalise_phone(typed) == "18201164104"


@pytest.mark.parametrize(
    "typed", ["", "12201164104", "1820116410", "010-12345678", "18201164104x", "１" * 11 + "1", "8" * 10_000]
)
def test_normalise_phone_rejects_what_is_no_mainland_mobile(typed: str) -> None:
    assert normalise_phone(typed) is None


def test_conversation_key_is_short_stable_and_hides_the_sender() -> None:
    key = conversation_key("web-7f3a9c-18201164104")
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert key == conversation_key("web-7f3a9c-18201164104")
    assert key != conversation_key("web-7f3a9c-18201164105")
    assert "18201164104" not in key


def test_phone_key_is_one_per_number_whatever_the_typing() -> None:
    assert phone_key("18201164104") == phone_key("+86 182-0116-4104")
    assert phone_key("18201164104") != phone_key("18201164105")
    # A conversation id that happens to be a phone number gets another pseudonym than the phone.
    assert conversation_key("18201164104") != phone_key("18201164104")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("我的手机13800001111收不到验证码", "我的手机138****1111收不到验证码"),
        ("手机号 +86 138-0000-1111 怎么改", "手机号 138****1111 怎么改"),
        ("电话１３８００００１１１１", "电话138****1111"),
        ("邮箱wang.li@example.com.cn请回复", "邮箱***@***请回复"),
        ("身份证号11010519491231002X", "身份证号***"),
        ("卡号 6222 0212 3456 7890 123 被扣款", "卡号 *** 被扣款"),
        ("QQ 123456789", "QQ ***"),
        # Order, ticket and tracking numbers reveal nobody: staff need them.
        ("SO202611180001 和 T09001 的快递 SF1234567890", "SO202611180001 和 T09001 的快递 SF1234567890"),
        ("满99元包邮吗，2026年能到吗", "满99元包邮吗，2026年能到吗"),
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked
