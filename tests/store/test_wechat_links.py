"""WeChat followers linked to customers, and callbacks taken once, on SQLite and PostgreSQL."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.access import CUSTOMER, Actor
from crm_store.errors import Invalid, NotFound
from crm_store.models import AuditLog, Customer, WechatSeenMessage
from crm_store.wechat_links import (
    first_seen,
    link,
    linked_customer,
    purge_seen,
    unlink,
    wechat_conversation,
    wechat_subject,
)

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
OPENID = "oAbCdEfGhIjKlMnOpQrStUvWxYz0"


@pytest.fixture
def sessions(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_factory.begin() as session:
        session.add(Customer(customer_id="C0001", name="张伟", type="个人"))
        session.add(Customer(customer_id="C0002", name="李娜", type="个人"))
    return session_factory


def _audit(session: Session) -> list[AuditLog]:
    return list(
        session.scalars(select(AuditLog).where(AuditLog.entity == "wechat_link").order_by(AuditLog.id))
    )


def test_link_then_unlink_is_audited_without_the_openid(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        assert linked_customer(session, OPENID) is None
        assert link(session, OPENID, "C0001", actor=CUSTOMER) is True
        assert link(session, OPENID, "C0001", actor=CUSTOMER) is False  # nothing changed, no audit
    with sessions.begin() as session:
        assert linked_customer(session, OPENID) == "C0001"
        assert unlink(session, OPENID) == "C0001"
        assert unlink(session, OPENID) is None
    with sessions() as session:
        assert linked_customer(session, OPENID) is None
        rows = _audit(session)
        assert [r.action for r in rows] == ["link_wechat", "unlink_wechat"]
        assert {r.entity_id for r in rows} == {wechat_subject(OPENID)}
        assert rows[0].detail["changes"] == {"customer_id": {"old": None, "new": "C0001"}}
        assert rows[1].detail["changes"] == {"customer_id": {"old": "C0001", "new": None}}
        assert all(OPENID not in str(r.detail) and OPENID not in (r.entity_id or "") for r in rows)


def test_relinking_moves_the_follower_to_another_customer(sessions: sessionmaker[Session]) -> None:
    admin = Actor(role="admin", employee_id="E99")
    with sessions.begin() as session:
        link(session, OPENID, "C0001", actor=CUSTOMER)
    with sessions.begin() as session:
        assert link(session, OPENID, "C0002", actor=admin) is True
    with sessions() as session:
        assert linked_customer(session, OPENID) == "C0002"
        last = _audit(session)[-1]
        assert (last.actor_role, last.actor_id) == ("admin", "E99")
        assert last.detail["changes"] == {"customer_id": {"old": "C0001", "new": "C0002"}}


def test_link_refuses_an_unknown_customer_or_a_bad_openid(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        with pytest.raises(NotFound) as missing:
            link(session, OPENID, "C9999", actor=CUSTOMER)
        assert missing.value.code == "customer_not_found"
        for bad in ("", "x" * 65):
            with pytest.raises(Invalid) as invalid:
                link(session, bad, "C0001", actor=CUSTOMER)
            assert invalid.value.code == "openid_invalid"


def test_wechat_conversation_is_the_rasa_sender() -> None:
    assert wechat_conversation(OPENID) == f"wechat:{OPENID}"
    assert OPENID not in wechat_subject(OPENID)


def test_first_seen_once_per_key_and_purged_after_a_day(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        assert first_seen(session, "24601", now=NOW) is True
        assert first_seen(session, "24601", now=NOW) is False
        assert first_seen(session, "old", now=NOW - timedelta(days=1, seconds=1)) is True
    with sessions.begin() as session:
        assert first_seen(session, "24601", now=NOW + timedelta(hours=1)) is False
        assert purge_seen(session, now=NOW) == 1
    with sessions() as session:
        assert set(session.scalars(select(WechatSeenMessage.msg_key))) == {"24601"}
        with pytest.raises(Invalid):
            first_seen(session, "", now=NOW)


def test_first_seen_across_concurrent_workers_says_new_once(sessions: sessionmaker[Session]) -> None:
    """Four workers take a copy of one callback at the same moment: exactly one is told it is new."""
    workers = 4
    barrier = Barrier(workers)

    def take(_: int) -> bool:
        barrier.wait(timeout=10)
        with sessions.begin() as session:
            return first_seen(session, "777001", now=NOW)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        answers = list(pool.map(take, range(workers)))
    assert sorted(answers) == [False, False, False, True]
