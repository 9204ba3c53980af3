"""Response bodies of `/api/reminders` and `/api/tasks/{id}/done`."""

from datetime import date, datetime

from pydantic import BaseModel, Field


class FollowUpOut(BaseModel):
    """A follow-up due: an open task (`task_id`) or an interaction's next step (`interaction_id`)."""

    kind: str = Field(description="task or interaction.")
    task_id: int | None
    interaction_id: str | None
    customer_id: str | None
    customer_name: str | None
    title: str
    due_date: date
    days_overdue: int


class BirthdayOut(BaseModel):
    customer_id: str
    name: str
    birthday: date = Field(description="The coming birthday (29 Feb → 28 Feb in other years).")
    days_until: int
    opt_out: bool


class LapsedOut(BaseModel):
    customer_id: str
    name: str
    last_order_date: date
    days_since_last_order: int
    threshold_days: int


class NoticeOut(BaseModel):
    """A message proactive care sent to the employee's staff inbox (crm_store/outbox.py)."""

    id: int
    rule: str = Field(description="birthday, lapse, follow_up, sla or replenishment.")
    text: str
    customer_id: str | None
    sent_at: datetime | None
    read: bool = Field(description="Whether the chat has already shown it.")


class RemindersOut(BaseModel):
    """What the signed-in employee should act on (crm_store/reminders.py documents the rules)."""

    today: date
    follow_ups: list[FollowUpOut]
    birthdays: list[BirthdayOut]
    lapsed: list[LapsedOut]
    lapsed_total: int
    notices: list[NoticeOut] = Field(description="Care notices of the last 3 days, newest first.")
