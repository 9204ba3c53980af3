"""Request and response bodies of `/api/chat`."""

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Rasa stores every message's metadata in its tracker store, so an unbounded client
# dict would be persisted on every turn.
MAX_METADATA_BYTES = 4096
SENDER_PATTERN = r"^[A-Za-z0-9_.:@-]+$"


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
