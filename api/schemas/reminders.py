"""Response bodies of `/api/reminders` and `/api/tasks/{id}/done`."""

from datetime import date

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


class RemindersOut(BaseModel):
    """What the signed-in employee should act on (crm_store/reminders.py documents the rules)."""

    today: date
    follow_ups: list[FollowUpOut]
    birthdays: list[BirthdayOut]
    lapsed: list[LapsedOut]
    lapsed_total: int
