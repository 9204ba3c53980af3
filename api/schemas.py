"""Request and response bodies of the public API."""

import json
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Rasa stores every message's metadata in its tracker store, so an unbounded client
# dict would be persisted on every turn.
MAX_METADATA_BYTES = 4096
SENDER_PATTERN = r"^[A-Za-z0-9_.:@-]+$"

# C0/C1 control characters except "\n", plus lone surrogates: a JSON body may carry
# "\ud800", which Python accepts but cannot encode as UTF-8 when forwarding.
_UNWANTED_CHARS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_message(text: str) -> str:
    """Normalise line ends and drop control characters, keeping newlines.

    Tabs become spaces rather than vanishing, so "a<TAB>b" does not turn into "ab".

    Args:
        text: The message as the client sent it.

    Returns:
        The message with only printable characters and "\\n" line breaks.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return _UNWANTED_CHARS.sub("", text)


class ChatRequest(BaseModel):
    """One user turn sent to the assistant."""

    sender: str = Field(
        min_length=1,
        max_length=128,
        pattern=SENDER_PATTERN,
        description="Stable conversation id chosen by the client (letters, digits, `_.:@-`).",
        examples=["web-3f9c2a7e51d04b8c"],
    )
    message: str = Field(
        description="What the user typed. Empty or over-long messages get a polite reply.",
        examples=["我的订单 SO202611180001 到哪了？"],
    )
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Extra context passed to the dialogue. `role` and `principal_id` are set by the server.",
    )

    @field_validator("metadata")
    @classmethod
    def _metadata_is_small_plain_json(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        # allow_nan=False and the UTF-8 encode reject what Python's json parser lets in but
        # cannot be forwarded to Rasa (NaN, lone surrogates); both raise ValueError -> 422.
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")
        return value


class Button(BaseModel):
    """A quick reply: show `title`, send `payload` back as the next message."""

    model_config = ConfigDict(extra="allow")

    title: str
    payload: str


class BotMessage(BaseModel):
    """One bot message, in the shape of Rasa's REST channel."""

    model_config = ConfigDict(extra="allow")

    recipient_id: str | None = None
    text: str | None = None
    buttons: list[Button] | None = None
    image: str | None = None
    custom: Any = None


class ComponentHealth(BaseModel):
    """Whether one component answers."""

    ok: bool
    detail: str | None = Field(
        default=None, description="Why the component is not ok, or a caveat when it is."
    )


class DatabaseHealth(ComponentHealth):
    """Whether the CRM database answers `SELECT 1`."""

    dialect: str | None = None


class RasaHealth(ComponentHealth):
    """Whether Rasa answers and has a model loaded (absent when it cannot be told)."""

    model_loaded: bool | None = None


class HealthComponents(BaseModel):
    """Per-component health."""

    database: DatabaseHealth
    rasa: RasaHealth
    action_server: ComponentHealth


HealthStatus = Literal["ok", "starting", "degraded"]


class HealthReport(BaseModel):
    """Overall health: `ok` only when every component is ok."""

    status: HealthStatus
    components: HealthComponents


class ErrorDetail(BaseModel):
    """An error explained in Chinese for the person using the API."""

    detail: str


class TranscriptEntryOut(BaseModel):
    """One line of a hand-off transcript."""

    model_config = ConfigDict(from_attributes=True)

    who: Literal["customer", "bot", "staff"]
    text: str
    at: datetime


class HandoffCaseOut(BaseModel):
    """A conversation handed to a person, with what was said so far (oldest first)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    sender_id: str = Field(description="The conversation (`sender` of `/api/chat`) the case pauses.")
    customer_id: str | None = Field(description="The verified customer, if any.")
    ticket_id: str | None = Field(description="The complaint ticket that led here, if any.")
    reason: str = Field(description="客户要求, 连续未理解 or 高优先级投诉.")
    status: Literal["open", "closed"]
    opened_at: datetime
    closed_at: datetime | None
    rating: int | None = Field(description="The customer's 1–5 rating, once given after closing.")
    transcript: list[TranscriptEntryOut]


class StaffReplyIn(BaseModel):
    """What a member of staff says to the customer."""

    text: str = Field(min_length=1, max_length=2000, examples=["您好，我是客服小周，已经在为您查询了。"])

    @field_validator("text")
    @classmethod
    def _clean_text(cls, value: str) -> str:
        text = clean_message(value).strip()
        if not text:
            raise ValueError("回复内容不能为空")
        return text


class StaffReplyOut(BaseModel):
    """A staff reply as queued for the customer; `delivered_at` is set once the chat has shown it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    case_id: int
    text: str
    created_at: datetime
    delivered_at: datetime | None
