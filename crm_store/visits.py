"""Logging a contact with a customer: one interaction and, when a next date is set, its follow-up task.

The employee confirmed a draft (knowledge.visits extracts it from one sentence; the bot shows it
as a card); `save_visit` checks who is saving and what, and writes both rows and their audit rows
in the caller's transaction: either everything is there after the commit, or
nothing.

Retries: the bot may send the same confirmation twice (a double tap, a retried request). A draft
identical to an interaction already stored (same customer, employee, kind, day and summary) is
taken as that earlier save and returns it with `created=False`, without a second interaction or
task: an employee does not log the same words about the same customer twice on one day. Two
retries arriving at the very same moment may still both save (there is no unique key for it in
the schema); the lead decides whether that is worth a column.
"""

from dataclasses import dataclass
from datetime import date
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.access import Actor, require_role, visible_customer
from crm_store.audit import audit
from crm_store.errors import Invalid
from crm_store.ids import add_with_new_id
from crm_store.models import Interaction, Task
from crm_store.vocab import INTERACTION_KINDS, TASK_STATUS_OPEN

__all__ = [
    "DEFAULT_TASK_TITLE",
    "SUMMARY_MAX_CHARS",
    "VISIT_ROLES",
    "SavedVisit",
    "VisitDraft",
    "save_visit",
]

VISIT_ROLES: Final = ("sales", "manager", "service", "admin")
"""Who may log a contact: every staff role, each within its scope (crm_store.access)."""

INTERACTION_ID_PREFIX: Final = "I"
INTERACTION_ID_DIGITS: Final = 5
TASK_SOURCE: Final = "interaction"
DEFAULT_TASK_TITLE: Final = "跟进客户"
"""The follow-up task's title when a next date was given without saying what to do."""
SUMMARY_MAX_CHARS: Final = 2000
TITLE_MAX_CHARS: Final = 200
"""`tasks.title` is 200 characters; a longer next step is cut there with …."""


@dataclass(frozen=True)
class VisitDraft:
    """What the employee confirmed: `occurred_at` defaults to today, `next_date` may be None."""

    customer_id: str
    kind: str
    summary: str
    occurred_at: date | None = None
    next_step: str | None = None
    next_date: date | None = None


@dataclass(frozen=True)
class SavedVisit:
    """The interaction saved and its follow-up task (None without a next date)."""

    interaction_id: str
    task_id: int | None
    created: bool = True
    """False when the draft was an earlier save again (see the module's note on retries)."""


def _check(draft: VisitDraft, today: date) -> tuple[str, date, str | None]:
    if draft.kind not in INTERACTION_KINDS:
        raise Invalid("visit_kind_unknown", field="kind")
    summary = draft.summary.strip()
    if not summary:
        raise Invalid("visit_summary_empty", field="summary")
    if len(summary) > SUMMARY_MAX_CHARS:
        raise Invalid("visit_summary_too_long", field="summary", limit=SUMMARY_MAX_CHARS)
    occurred_at = draft.occurred_at or today
    if occurred_at > today:
        raise Invalid("visit_in_future", field="occurred_at")
    if draft.next_date is not None and draft.next_date < occurred_at:
        raise Invalid("next_date_before_visit", field="next_date")
    next_step = (draft.next_step or "").strip() or None
    return summary, occurred_at, next_step


def _earlier(
    session: Session, actor: Actor, draft: VisitDraft, summary: str, occurred_at: date
) -> SavedVisit | None:
    interaction = session.scalar(
        select(Interaction).where(
            Interaction.customer_id == draft.customer_id,
            Interaction.employee_id == actor.employee_id,
            Interaction.kind == draft.kind,
            Interaction.occurred_at == occurred_at,
            Interaction.summary == summary,
        )
    )
    if interaction is None:
        return None
    task_id = None
    if interaction.next_date is not None:
        task_id = session.scalar(
            select(Task.id)
            .where(
                Task.owner_id == actor.employee_id,
                Task.customer_id == draft.customer_id,
                Task.due_date == interaction.next_date,
                Task.source == TASK_SOURCE,
            )
            .order_by(Task.id.desc())
        )
    return SavedVisit(interaction_id=interaction.interaction_id, task_id=task_id, created=False)


def save_visit(session: Session, actor: Actor, draft: VisitDraft) -> SavedVisit:
    """Save a confirmed contact: one interaction, and one open task when there is a next date.

    The task belongs to the employee saving, is due on the next date and is titled with the next
    step (or `DEFAULT_TASK_TITLE`). Audit rows `log_visit` (the interaction) and `create_task`
    name the employee; the summary and the next step are the note's own words and are not copied
    into them. The caller commits.

    Raises:
        Forbidden: The actor is not staff ("staff_only") or has no role to log contacts
            ("role_not_allowed").
        NotFound: No such customer, or one outside the actor's scope ("customer_not_found").
        Invalid: "visit_kind_unknown" (kind), "visit_summary_empty" / "visit_summary_too_long"
            (summary), "visit_in_future" (occurred_at), "next_date_before_visit" (next_date).
    """
    require_role(actor, *VISIT_ROLES)
    customer = visible_customer(session, actor, draft.customer_id)
    summary, occurred_at, next_step = _check(draft, clock.today())
    employee_id = actor.employee_id
    assert employee_id is not None  # require_role: staff have an id

    earlier = _earlier(session, actor, draft, summary, occurred_at)
    if earlier is not None:
        return earlier

    interaction = add_with_new_id(
        session,
        model=Interaction,
        column=Interaction.interaction_id,
        prefix=INTERACTION_ID_PREFIX,
        width=INTERACTION_ID_DIGITS,
        build=lambda interaction_id: Interaction(
            interaction_id=interaction_id,
            customer_id=customer.customer_id,
            employee_id=employee_id,
            kind=draft.kind,
            occurred_at=occurred_at,
            summary=summary,
            next_step=next_step,
            next_date=draft.next_date,
        ),
    )
    audit(
        session,
        actor,
        "log_visit",
        entity="interaction",
        entity_id=interaction.interaction_id,
        customer_id=customer.customer_id,
        kind=draft.kind,
        occurred_at=occurred_at,
        next_date=draft.next_date,
    )
    task: Task | None = None
    if draft.next_date is not None:
        title = next_step or DEFAULT_TASK_TITLE
        if len(title) > TITLE_MAX_CHARS:
            title = title[: TITLE_MAX_CHARS - 1] + "…"
        task = Task(
            owner_id=employee_id,
            customer_id=customer.customer_id,
            title=title,
            due_date=draft.next_date,
            status=TASK_STATUS_OPEN,
            source=TASK_SOURCE,
        )
        session.add(task)
    session.flush()
    if task is not None:
        audit(
            session,
            actor,
            "create_task",
            entity="task",
            entity_id=str(task.id),
            customer_id=customer.customer_id,
            due_date=task.due_date,
            interaction_id=interaction.interaction_id,
        )
        session.flush()
    return SavedVisit(
        interaction_id=interaction.interaction_id, task_id=task.id if task is not None else None
    )
