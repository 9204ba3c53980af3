"""Masking and pseudonyms: what replies and logs may show of a phone, a name, a conversation."""

import re

import pytest

from crm_store.privacy import conversation_key, mask_name, mask_phone, normalise_phone, phone_key


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
