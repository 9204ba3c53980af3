"""Response body of `GET /api/care` (`crm_store.outbox.care_status`)."""

from pydantic import BaseModel, Field


class CareChannelOut(BaseModel):
    """The health of one delivery channel."""

    channel: str = Field(description="staff_inbox, web, email, sms or wechat.")
    consecutive_failures: int
    paused: bool = Field(description="Paused after too many failures in a row: its messages wait.")
    last_error: str | None


class CareStatusOut(BaseModel):
    """How many care messages are in each state of the outbox, and the channels' health."""

    pending: int = Field(description="Ready to be sent.")
    deferred: int = Field(description="Held until later: quiet hours, or a retry's backoff.")
    sending: int = Field(default=0, description="Claimed by a sender right now.")
    sent: int
    failed: int = Field(description="Given up after too many attempts.")
    skipped: int = Field(description="Not sent on purpose, e.g. the customer opted out.")
    channels: list[CareChannelOut]
