"""Request and response bodies of `/api/handoffs`."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.common import clean_message


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
