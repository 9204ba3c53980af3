"""WeCom members linked to employees: one member one employee, who may chat, on SQLite and PostgreSQL."""

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from crm_store.accounts import OPERATOR
from crm_store.errors import Conflict, Forbidden, Invalid, NotFound
from crm_store.models import Employee
from crm_store.wecom_links import link_wecom, unlink_wecom, wecom_actor, wecom_userids


@pytest.fixture
def sessions(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_factory.begin() as session:
        password = "$argon2id$stand-in"  # any hash: only whether there is one matters here
        session.add(
            Employee(employee_id="E02", name="王芳", role="sales", region="华东", password_hash=password)
        )
        session.add(
            Employee(employee_id="E03", name="刘洋", role="sales", region="华北", password_hash=password)
        )
        session.add(Employee(employee_id="E04", name="赵敏", role="service", region="华东"))
    return session_factory


def test_a_linked_member_is_the_employee_with_todays_role(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        assert link_wecom(session, "E03", " LiuYang ", actor=OPERATOR)
        assert not link_wecom(session, "E03", "LiuYang", actor=OPERATOR)
    with sessions.begin() as session:
        session.get_one(Employee, "E03").role = "manager"
    with sessions() as session:
        actor = wecom_actor(session, "LiuYang")
        assert (actor.employee_id, actor.role, actor.region) == ("E03", "manager", "华北")
        assert wecom_userids(session) == {"E03": "LiuYang"}
        assert wecom_userids(session, ["E02", "E03"]) == {"E03": "LiuYang"}


def test_one_member_is_one_employee(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        link_wecom(session, "E03", "LiuYang", actor=OPERATOR)
    with pytest.raises(Conflict) as raised, sessions.begin() as session:
        link_wecom(session, "E02", "LiuYang", actor=OPERATOR)
    assert raised.value.data == {"employee_id": "E03"}
    # Even past the service (two workers at once): the unique index holds.
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.get_one(Employee, "E02").wecom_userid = "LiuYang"
    with sessions.begin() as session:
        assert unlink_wecom(session, "E03", actor=OPERATOR)
        assert link_wecom(session, "E02", "LiuYang", actor=OPERATOR)
    with sessions() as session:
        assert wecom_actor(session, "LiuYang").employee_id == "E02"


def test_unknown_members_and_employees_without_an_account_are_refused(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        link_wecom(session, "E04", "ZhaoMin", actor=OPERATOR)
    with sessions() as session:
        with pytest.raises(NotFound):
            wecom_actor(session, "Nobody")
        with pytest.raises(Forbidden) as raised:
            wecom_actor(session, "ZhaoMin")  # no password: no sign-in account
        assert raised.value.code == "wecom_account_inactive"


def test_bad_userids_and_unknown_employees_are_refused(sessions: sessionmaker[Session]) -> None:
    for userid in ["", "   ", "two words", "x" * 65]:
        with pytest.raises(Invalid) as raised, sessions.begin() as session:
            link_wecom(session, "E02", userid, actor=OPERATOR)
        assert raised.value.field == "wecom_userid"
    with pytest.raises(NotFound), sessions.begin() as session:
        link_wecom(session, "E77", "Somebody", actor=OPERATOR)
    with pytest.raises(NotFound), sessions.begin() as session:
        unlink_wecom(session, "E77", actor=OPERATOR)
    with sessions() as session:
        assert wecom_userids(session) == {}
