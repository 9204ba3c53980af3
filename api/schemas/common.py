"""Bodies and helpers shared by every resource of the API."""

import re

from pydantic import BaseModel

# C0/C1 control characters except "\n", plus lone surrogates: a JSON body may carry
# "\ud800", which Python accepts but cannot encode as UTF-8 when forwarding. Also the invisible
# format characters that only hide or disguise text: zero-width space, word joiner, BOM, and the
# bidi marks, embeddings, overrides and isolates (a "\u202e" shows staff a reply reversed). The
# zero-width (non-)joiner stays: emoji sequences such as 👨‍👩‍👧 are made of it.
_UNWANTED_CHARS = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)


def clean_message(text: str) -> str:
    """Normalise line ends and drop control and invisible format characters, keeping newlines.

    Tabs become spaces rather than vanishing, so "a<TAB>b" does not turn into "ab".

    Args:
        text: The message as the client sent it.

    Returns:
        The message with only printable characters and "\\n" line breaks.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return _UNWANTED_CHARS.sub("", text)


class ErrorDetail(BaseModel):
    """An error explained in Chinese for the person using the API."""

    detail: str
