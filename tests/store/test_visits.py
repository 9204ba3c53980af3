"""Saving a confirmed visit: one interaction and its follow-up task, audited, within the actor's scope."""

from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import CUSTOMER, actor_for
from crm_store.errors import Forbidden, Invalid, NotFound
from crm_store.models import AuditLog, Interaction, Task
from crm_store.visits import DEFAULT_TASK_TITLE, VisitDraft, save_visit

MONDAY = date(2026, 11, 23)
CALL = VisitDraft(
    customer_id="C0003",
    kind="电话",
    summary="刚和华峰科技的王芳通了电话，她对二期报价挺感兴趣",
    next_step="联系王芳",
    next_date=date(2026, 12, 1),
)


@pytest.fixture(autouse=True)
def demo_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_TODAY", MONDAY.isoformat())


def _counts(session: Session) -> tuple[int, int]:
    return (
        session.scalar(select(func.count()).select_from(Interaction)) or 0,
        session.scalar(select(func.count()).select_from(Task)) or 0,
    )


def test_a_call_with_a_next_date_saves_one_interaction_and_one_open_task(
    demo_store: sessionmaker[Session],
) -> None:
    with demo_store() as session:
        before = _counts(session)
    with demo_store.begin() as session:
        saved = save_visit(session, actor_for(session, "E03"), CALL)
    with demo_store() as session:
        assert _counts(session) == (before[0] + 1, before[1] + 1)
        interaction = session.get(Interaction, saved.interaction_id)
        assert interaction is not None
        assert (interaction.customer_id, interaction.employee_id, interaction.kind) == (
            "C0003",
            "E03",
            "电话",
        )
        assert (interaction.occurred_at, interaction.next_date) == (MONDAY, date(2026, 12, 1))
        task = session.get(Task, saved.task_id)
        assert task is not None
        assert (task.owner_id, task.customer_id, task.due_date, task.status, task.title, task.source) == (
            "E03",
            "C0003",
            date(2026, 12, 1),
            "待办",
            "联系王芳",
            "interaction",
        )
        rows = session.scalars(select(AuditLog).where(AuditLog.actor_id == "E03")).all()
        assert {(row.action, row.entity_id) for row in rows} == {
            ("log_visit", saved.interaction_id),
            ("create_task", str(saved.task_id)),
        }
        # The note's words (a name, what was said) stay out of the audit log.
        assert all("王芳" not in str(row.detail) for row in rows)


def test_without_a_next_date_no_task(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        saved = save_visit(
            session,
            actor_for(session, "E03"),
            VisitDraft(customer_id="C0003", kind="拜访", summary="聊了二期"),
        )
    assert saved.task_id is None
    with demo_store() as session:
        interaction = session.get(Interaction, saved.interaction_id)
        assert interaction is not None and interaction.occurred_at == MONDAY


def test_a_next_date_without_a_step_gets_the_default_title(demo_store: sessionmaker[Session]) -> None:
    draft = VisitDraft(customer_id="C0003", kind="微信", summary="发了资料", next_date=date(2026, 11, 30))
    with demo_store.begin() as session:
        saved = save_visit(session, actor_for(session, "E03"), draft)
    with demo_store() as session:
        task = session.get(Task, saved.task_id)
        assert task is not None and task.title == DEFAULT_TASK_TITLE


def test_the_same_confirmation_twice_saves_once(demo_store: sessionmaker[Session]) -> None:
    with demo_store.begin() as session:
        first = save_visit(session, actor_for(session, "E03"), CALL)
    with demo_store() as session:
        before = _counts(session)
    with demo_store.begin() as session:
        again = save_visit(session, actor_for(session, "E03"), CALL)
    assert (again.interaction_id, again.task_id, again.created) == (
        first.interaction_id,
        first.task_id,
        False,
    )
    with demo_store() as session:
        assert _counts(session) == before


@pytest.mark.parametrize("employee", ["E02", "E04", "E06"])
def test_a_customer_outside_the_scope_is_not_found(demo_store: sessionmaker[Session], employee: str) -> None:
    with demo_store() as session:
        before = _counts(session)
        with pytest.raises(NotFound) as refused:
            save_visit(session, actor_for(session, employee), CALL)
        assert refused.value.code == "customer_not_found"
        session.rollback()
        assert _counts(session) == before


def test_a_customer_actor_is_refused(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session, pytest.raises(Forbidden):
        save_visit(session, CUSTOMER, CALL)


def test_manager_and_admin_may_log_for_their_scope(demo_store: sessionmaker[Session]) -> None:
    draft = VisitDraft(customer_id="C0001", kind="拜访", summary="拜访张伟")
    with demo_store.begin() as session:
        assert save_visit(session, actor_for(session, "E01"), draft).task_id is None
        assert save_visit(session, actor_for(session, "E08"), CALL).task_id is not None
        with pytest.raises(NotFound):
            save_visit(session, actor_for(session, "E01"), CALL)  # 王芳 is 华北


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"kind": "飞鸽传书"}, "visit_kind_unknown"),
        ({"summary": "   "}, "visit_summary_empty"),
        ({"occurred_at": date(2026, 11, 24)}, "visit_in_future"),
        ({"occurred_at": date(2026, 11, 20), "next_date": date(2026, 11, 19)}, "next_date_before_visit"),
    ],
)
def test_invalid_drafts_are_refused_and_save_nothing(
    demo_store: sessionmaker[Session], changes: dict[str, object], code: str
) -> None:
    fields = {**CALL.__dict__, **changes}
    with demo_store() as session:
        before = _counts(session)
        with pytest.raises(Invalid) as refused:
            save_visit(session, actor_for(session, "E03"), VisitDraft(**fields))
        assert refused.value.code == code
        session.rollback()
        assert _counts(session) == before
