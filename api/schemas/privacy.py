"""Bodies of `/api/admin/customers/{id}/personal-data` and `…/erase` (`crm_store.personal_data`)."""

from typing import Any

from pydantic import BaseModel, Field

Rows = list[dict[str, Any]]


class PersonalDataOut(BaseModel):
    """Everything held about one customer, each section as the store keeps it (every column)."""

    customer_id: str
    exported_at: str = Field(description="When the export was made (ISO 8601).")
    profile: dict[str, Any] = Field(description="The customer's row: name, phone, e-mail, birthday, notes …")
    orders: Rows = Field(description="Orders, each with its items.")
    tickets: Rows
    interactions: Rows = Field(description="Visits, calls and messages logged by staff.")
    opportunities: Rows
    tasks: Rows
    outbox: Rows = Field(description="Messages sent (or to be sent) to the customer or about them.")
    handoff_cases: Rows = Field(description="Hand-off cases with their transcripts and staff messages.")
    wechat_links: Rows
    faq_votes: Rows = Field(description="Their 👍/👎 on FAQ answers.")
    unanswered_questions: Rows = Field(description="Questions they asked that no FAQ answered.")
    conversations: Rows = Field(
        description='Their chats in the tracker store: {"conversation", "messages": [{"who", "text", "at"}]}.'
    )


class ErasureOut(BaseModel):
    """What an erasure changed, in counts (`crm_store.personal_data.ErasureReport`)."""

    customer_id: str
    already_erased: bool = Field(description="An earlier erasure had removed the data already.")
    conversations: int = Field(description="The customer's conversations blanked in the tracker store.")
    tracker_events: int = Field(description="Tracker events changed (theirs, and others naming them).")
    tickets: int
    interactions: int
    outbox_messages: int
    handoff_cases: int
    wechat_links: int = Field(description="WeChat links removed.")
    unanswered_questions: int = Field(description="Queued questions where their name or phone was masked.")
    masked_elsewhere: int = Field(
        description="Other cells of the store where their name, phone or e-mail was masked."
    )
