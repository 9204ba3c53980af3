"""Personal data as the chat may show or log it: masked phones and names, hashed keys.

Replies mask every phone number (docs/requirements.md §7, issue 3). Logs and lock tables never hold a
conversation id or a phone in clear: they hold `conversation_key(...)` / `phone_key(...)`, short
SHA-256 digests. These are pseudonyms, not encryption: the set of mainland phone numbers is small
enough to enumerate, so a digest table must still be treated as internal data. Free text a customer
typed is stored only through `mask_text`, which hides phones, e-mails, ID and card numbers in it.
"""

import hashlib
import re
import unicodedata
from typing import Final

MASK: Final = "***"
# Two-character surnames: masking only their first character would reveal half of a short name.
COMPOUND_SURNAMES: Final = frozenset(
    {
        "欧阳",
        "司马",
        "诸葛",
        "上官",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
        "令狐",
        "端木",
        "独孤",
        "南宫",
        "西门",
    }
)
# A key is a prefix of the hex digest: 16 hex digits (64 bits) make collisions negligible at CRM scale.
KEY_HEX_DIGITS: Final = 16

_MOBILE: Final = re.compile(r"1[3-9][0-9]{9}")
_ELEVEN_DIGITS: Final = re.compile(r"[0-9]{11}")
_PHONE_SEPARATORS: Final = re.compile(r"[\s()（）.\-－—]")
_COUNTRY_PREFIXES: Final = ("+86", "0086", "86")
# Longer input cannot be a phone number, however it is spaced; refuse it before normalising.
_MAX_PHONE_INPUT_CHARS: Final = 32


def _phone_digits(text: str) -> str | None:
    if len(text) > _MAX_PHONE_INPUT_CHARS:
        return None
    # NFKC folds full-width digits and the ideographic space, which Chinese input methods produce.
    digits = _PHONE_SEPARATORS.sub("", unicodedata.normalize("NFKC", text))
    for prefix in _COUNTRY_PREFIXES:
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            return digits[len(prefix) :]
    return digits


def normalise_phone(text: str) -> str | None:
    """A mainland mobile number as 11 digits, or None.

    Spaces, dashes, dots, brackets and a +86 / 0086 / 86 prefix are dropped, full-width digits are
    folded, so "+86 182-0116-4104" gives "18201164104". The same rule as the CSV importer's.
    """
    digits = _phone_digits(text)
    return digits if digits is not None and _MOBILE.fullmatch(digits) else None


def mask_phone(phone: str | None) -> str:
    """ "182****4104" for an 11-digit number (after the normalisation above), "***" for anything else."""
    digits = _phone_digits(phone or "")
    if digits is None or not _ELEVEN_DIGITS.fullmatch(digits):
        return MASK
    return f"{digits[:3]}****{digits[-4:]}"


def surname(name: str) -> str:
    """The family name of a Chinese personal name: "张伟" → "张", "欧阳娜娜" → "欧阳"."""
    name = name.strip()
    if len(name) > 2 and name[:2] in COMPOUND_SURNAMES:
        return name[:2]
    return name[:1]


def mask_name(name: str | None) -> str:
    """The surname and one star per hidden character: "张伟" → "张*", "欧阳娜娜" → "欧阳**"."""
    name = (name or "").strip()
    if not name:
        return MASK
    kept = surname(name)
    if len(name) <= len(kept):
        # A one-character "name" is all surname: show nothing of it.
        return "*" * len(name)
    return kept + "*" * (len(name) - len(kept))


def _key(kind: str, value: str) -> str:
    # The kind is hashed too, so that a conversation id that looks like a phone gives another key.
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:KEY_HEX_DIGITS]


def conversation_key(sender_id: str) -> str:
    """A short, stable pseudonym of a chat conversation id, for logs and lock tables."""
    return _key("conversation", sender_id)


def phone_key(phone: str) -> str:
    """A short, stable pseudonym of a phone number; typed variants of one number give one key."""
    return _key("phone", normalise_phone(phone) or phone.strip())


# Free text: the digit classes take full-width digits too, which Chinese input methods produce.
_TEXT_DIGIT: Final = "[0-9\uff10-\uff19]"
_TEXT_EMAIL: Final = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
# Bank cards as people type them: groups of four digits, spaced or dashed.
_TEXT_CARD: Final = re.compile(
    rf"(?<!{_TEXT_DIGIT}){_TEXT_DIGIT}{{4}}(?:[ \-]{_TEXT_DIGIT}{{4}}){{3}}(?:[ \-]?{_TEXT_DIGIT}{{1,3}})?"
    rf"(?!{_TEXT_DIGIT})"
)
# Resident ID numbers: 18 characters, the last a digit or X.
_TEXT_ID_CARD: Final = re.compile(
    rf"(?<![A-Za-z0-9\uff10-\uff19]){_TEXT_DIGIT}{{17}}[0-9\uff10-\uff19Xx\uff38\uff58](?![A-Za-z0-9\uff10-\uff19])"
)
_TEXT_SEP: Final = r"[ \-\uff0d.]?"
_TEXT_MOBILE: Final = re.compile(
    rf"(?<!{_TEXT_DIGIT})(?:(?:\+|\uff0b|00)?86{_TEXT_SEP})?[1\uff11][3-9\uff13-\uff19]"
    rf"(?:{_TEXT_SEP}{_TEXT_DIGIT}){{9}}(?!{_TEXT_DIGIT})"
)
# Any other long run of digits (QQ, landline, bank card typed in one piece). Runs glued to letters
# stay: SO202611180001 or SF1234567890 are order and tracking numbers, not personal data.
_TEXT_LONG_DIGITS: Final = re.compile(rf"(?<![A-Za-z0-9\uff10-\uff19]){_TEXT_DIGIT}{{7,}}")


def mask_text(text: str) -> str:
    """Free text with personal data hidden, fit to be stored, shown to staff and logged.

    Mobile numbers become "182****4104" (as `mask_phone`), e-mail addresses "***@***", ID and card
    numbers and any other run of seven or more digits "***". Order, ticket and tracking numbers stay
    (SO202611180001, T09001, SF1234567890): alone they reveal nobody. Names and addresses cannot be
    told apart from other words and are left as typed.
    """
    text = _TEXT_EMAIL.sub(f"{MASK}@{MASK}", text)
    text = _TEXT_CARD.sub(MASK, text)
    text = _TEXT_ID_CARD.sub(MASK, text)
    text = _TEXT_MOBILE.sub(lambda match: mask_phone(match.group()), text)
    return _TEXT_LONG_DIGITS.sub(MASK, text)
