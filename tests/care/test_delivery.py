"""The delivery adapters: real SMTP on loopback, spool files, WeCom app messages to a fake WeCom API
on loopback, and failures as `DeliveryFailed`."""

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from care.delivery import (
    DeliveryFailed,
    Email,
    EmailSpool,
    SmsSpool,
    WechatSpool,
    WechatTemplate,
    WecomApp,
    channels,
)
from care.run import run_once, send_due, today_at_ten
from crm_store.accounts import OPERATOR
from crm_store.models import CareChannel, Outbox
from crm_store.outbox import NewMessage, OutboxMessage, enqueue, inbox
from crm_store.settings import CareSettings, WechatSettings, WecomSettings
from crm_store.wechat_links import link
from crm_store.wecom_links import link_wecom, unlink_wecom
from tests.care.care_support import LocalSmtp, add_customer, add_employee, free_port
from tests.care.wecom_api import AGENT_ID, CORP_ID, SECRET, FakeWecomApi, running_wecom_api
from tests.wechat_api import FakeWechatApi, running_wechat_api


def _message(channel: str = "email", address: str | None = "c0001@example.com") -> OutboxMessage:
    return OutboxMessage(
        id=7,
        rule="birthday",
        audience="customer",
        customer_id="C0001",
        employee_id=None,
        channel=channel,
        text="张伟女士，您好！今天是您的生日，祝您生日快乐！",
        dedupe_key=f"birthday:C0001:2026-11-25:customer:{channel}",
        attempts=0,
        recipient_name="张伟",
        address=address,
        opt_out=False,
    )


def test_email_arrives_in_chinese_addressed_to_the_customer() -> None:
    with LocalSmtp() as server:
        Email(server.url, sender="小助手 <care@localhost>", timeout_s=5).send(_message())
    (mail,) = server.messages
    assert server.collector.recipients == [["c0001@example.com"]]
    assert mail["To"].addresses[0].display_name == "张伟"
    assert mail["Subject"] == "生日快乐"
    assert mail["X-Care-Dedupe-Key"] == "birthday:C0001:2026-11-25:customer:email"
    assert "生日快乐" in mail.get_content()


def test_email_to_a_server_that_is_down_fails_without_the_address_in_the_reason() -> None:
    email = Email(f"smtp://127.0.0.1:{free_port()}", sender="care@localhost", timeout_s=2)
    with pytest.raises(DeliveryFailed) as raised:
        email.send(_message())
    assert raised.value.reason.startswith("smtp_unreachable:")
    assert "example.com" not in str(raised.value)


def test_email_without_address_or_with_a_bad_url_fails() -> None:
    with pytest.raises(DeliveryFailed, match="no_address"):
        Email("smtp://127.0.0.1:25", sender="care@localhost", timeout_s=1).send(_message(address=None))
    with pytest.raises(DeliveryFailed, match="smtp_url_invalid"):
        Email("http://example.com", sender="care@localhost", timeout_s=1).send(_message())


def test_spool_channels_append_one_json_line_per_message(tmp_path: Path) -> None:
    sms = SmsSpool(tmp_path)
    sms.send(_message("sms", "13800138000"))
    sms.send(_message("sms", "13800138000"))
    lines = [json.loads(line) for line in sms.path.read_text(encoding="utf-8").splitlines()]
    assert [line["to"] for line in lines] == ["13800138000", "13800138000"]
    assert lines[0]["dedupe_key"] == "birthday:C0001:2026-11-25:customer:sms"
    assert lines[0]["text"].startswith("张伟女士")


def test_channels_use_smtp_only_when_configured(tmp_path: Path) -> None:
    assert isinstance(channels(CareSettings(care_spool_dir=tmp_path))["email"], EmailSpool)
    configured = channels(CareSettings(care_spool_dir=tmp_path, smtp_url=SecretStr("smtp://127.0.0.1:2525")))
    assert isinstance(configured["email"], Email)
    assert set(configured) == {"staff_inbox", "web", "email", "sms", "wechat"}


@pytest.fixture
def wecom_api() -> Iterator[FakeWecomApi]:
    with running_wecom_api() as fake:
        yield fake


def _wecom(api: FakeWecomApi) -> WecomSettings:
    return WecomSettings(corp_id=CORP_ID, agent_id=AGENT_ID, secret=SecretStr(SECRET), api_base=api.base)


def test_wecom_is_a_channel_only_when_the_app_can_send(tmp_path: Path, wecom_api: FakeWecomApi) -> None:
    care = CareSettings(care_spool_dir=tmp_path)
    assert "wecom" not in channels(care, WecomSettings(corp_id=CORP_ID, agent_id=AGENT_ID))
    assert isinstance(channels(care, _wecom(wecom_api))["wecom"], WecomApp)


def test_a_refused_wecom_message_fails_with_errcode_and_without_the_userid(wecom_api: FakeWecomApi) -> None:
    wecom_api.refuse_with = 60020
    with pytest.raises(DeliveryFailed) as raised:
        WecomApp(_wecom(wecom_api)).send(_message("wecom", "LiuYang"))
    assert raised.value.reason == "wecom_error:60020"
    assert "LiuYang" not in str(raised.value)
    unreachable = WecomSettings(
        corp_id=CORP_ID,
        agent_id=AGENT_ID,
        secret=SecretStr(SECRET),
        api_base=f"http://127.0.0.1:{free_port()}",
    )
    with pytest.raises(DeliveryFailed, match="wecom_unreachable:ConnectionError"):
        WecomApp(unreachable).send(_message("wecom", "LiuYang"))


def _birthday_store(sessions: sessionmaker[Session]) -> None:
    """E02 (linked to WeCom as LiuYang) and E05 (not), each owning a customer born on 25 November."""
    with sessions.begin() as session:
        add_employee(session, "E02")
        add_employee(session, "E05")
        session.flush()
        add_customer(session, "C1", owner_id="E02", birthday=date(1990, 11, 25))
        add_customer(session, "C2", owner_id="E05", birthday=date(1991, 11, 25))
        session.flush()
        link_wecom(session, "E02", "LiuYang", actor=OPERATOR)


def _rows(sessions: sessionmaker[Session], channel: str) -> list[Any]:
    with sessions() as session:
        return list(
            session.execute(select(Outbox).where(Outbox.channel == channel).order_by(Outbox.id)).scalars()
        )


def test_a_staff_reminder_reaches_the_linked_employee_on_wecom_and_stays_in_the_inbox(
    session_factory: sessionmaker[Session], tmp_path: Path, wecom_api: FakeWecomApi
) -> None:
    _birthday_store(session_factory)
    now = today_at_ten(date(2026, 11, 25))

    report = run_once(
        session_factory, now=now, settings=CareSettings(care_spool_dir=tmp_path), wecom=_wecom(wecom_api)
    )

    staff = sorted((i.employee_id, i.channel) for i in report.sent if i.audience == "staff")
    assert staff == [("E02", "staff_inbox"), ("E02", "wecom"), ("E05", "staff_inbox")]
    ((query, body),) = wecom_api.accepted
    assert query["access_token"] == ["ACCESS-1"]
    assert (body["touser"], body["agentid"], body["msgtype"]) == ("LiuYang", AGENT_ID, "text")
    reminder = next(i for i in report.sent if i.employee_id == "E02" and i.channel == "staff_inbox")
    assert body["text"]["content"] == reminder.text and "客户C1" in reminder.text
    (wecom_row,) = _rows(session_factory, "wecom")
    assert wecom_row.dedupe_key == reminder.dedupe_key.removesuffix("staff_inbox") + "wecom"
    with session_factory() as session:
        assert [m.text for m in inbox(session, employee_id="E02")] == [reminder.text]
    again = run_once(
        session_factory,
        now=now + timedelta(hours=1),
        settings=CareSettings(care_spool_dir=tmp_path),
        wecom=_wecom(wecom_api),
    )
    assert again.sent == [] and len(wecom_api.accepted) == 1


def test_a_wecom_failure_backs_off_alone_and_the_inbox_row_is_sent(
    session_factory: sessionmaker[Session], tmp_path: Path, wecom_api: FakeWecomApi
) -> None:
    _birthday_store(session_factory)
    care = CareSettings(care_spool_dir=tmp_path)
    now = today_at_ten(date(2026, 11, 25))
    wecom_api.refuse_with = 60020

    report = run_once(session_factory, now=now, settings=care, wecom=_wecom(wecom_api))

    assert [(i.channel, i.reason) for i in report.deferred] == [("wecom", "wecom_error:60020")]
    assert ("E02", "staff_inbox") in {(i.employee_id, i.channel) for i in report.sent}
    (row,) = _rows(session_factory, "wecom")
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "wecom_error:60020")
    with session_factory() as session:
        assert len(inbox(session, employee_id="E02")) == 1
        health = {c.channel: c.consecutive_failures for c in session.scalars(select(CareChannel))}
    assert health.get("wecom") == 1 and not health.get("staff_inbox")

    # WeCom trusts the server again: the retry after the backoff goes out.
    wecom_api.refuse_with = None
    later = now + timedelta(seconds=care.care_retry_max_s)
    retried = send_due(session_factory, now=later, settings=care, wecom=_wecom(wecom_api))
    assert [(i.channel, i.employee_id) for i in retried.sent] == [("wecom", "E02")]
    assert [body["touser"] for _query, body in wecom_api.accepted] == ["LiuYang"]


def test_an_employee_unlinked_before_sending_is_skipped(
    session_factory: sessionmaker[Session], tmp_path: Path, wecom_api: FakeWecomApi
) -> None:
    _birthday_store(session_factory)
    now = today_at_ten(date(2026, 11, 25))
    decided = NewMessage(
        rule="birthday",
        audience="staff",
        customer_id="C1",
        employee_id="E02",
        channel="wecom",
        text="客户C1今天过生日。",
        dedupe_key="birthday:C1:2026-11-25:staff:wecom",
    )
    with session_factory.begin() as session:
        enqueue(session, [decided], now=now)
        unlink_wecom(session, "E02", actor=OPERATOR)

    report = send_due(
        session_factory, now=now, settings=CareSettings(care_spool_dir=tmp_path), wecom=_wecom(wecom_api)
    )

    assert [(i.channel, i.reason) for i in report.skipped] == [("wecom", "no_address")]
    assert wecom_api.accepted == []


# -- WeChat template messages to customers ------------------------------------------------------------

CARE_TEMPLATE = "tpl-care-reminder-01"
FOLLOWER = "oCareFollower000000000000001"


@pytest.fixture
def wechat_api() -> Iterator[FakeWechatApi]:
    with running_wechat_api() as fake:
        yield fake


def _wechat(api: FakeWechatApi, **changes: Any) -> WechatSettings:
    values: dict[str, Any] = {
        "app_id": "wx-care-app",
        "app_secret": SecretStr("wx-care-secret"),
        "api_base": api.base,
        "care_template_id": CARE_TEMPLATE,
        **changes,
    }
    return WechatSettings(**values)


def test_wechat_is_template_messages_only_when_a_care_template_is_set(
    tmp_path: Path, wechat_api: FakeWechatApi
) -> None:
    care = CareSettings(care_spool_dir=tmp_path)
    assert isinstance(channels(care, wechat=_wechat(wechat_api))["wechat"], WechatTemplate)
    assert isinstance(
        channels(care, wechat=_wechat(wechat_api, care_template_id=None))["wechat"], WechatSpool
    )
    assert isinstance(channels(care, wechat=_wechat(wechat_api, app_secret=None))["wechat"], WechatSpool)


def test_a_wechat_customers_birthday_greeting_is_a_template_message_to_the_linked_follower(
    session_factory: sessionmaker[Session], tmp_path: Path, wechat_api: FakeWechatApi
) -> None:
    with session_factory.begin() as session:
        add_employee(session, "E02")
        session.flush()
        add_customer(session, "C1", owner_id="E02", birthday=date(1990, 11, 25), channel_pref="wechat")
        add_customer(session, "C2", owner_id="E02", birthday=date(1991, 11, 25), channel_pref="wechat")
        session.flush()
        link(session, FOLLOWER, "C1", actor=OPERATOR)  # C2 never verified in the WeChat chat
    care = CareSettings(care_spool_dir=tmp_path)

    report = run_once(
        session_factory,
        now=today_at_ten(date(2026, 11, 25)),
        settings=care,
        adapters=channels(care, wechat=_wechat(wechat_api)),
    )

    sent = [i for i in report.sent if i.channel == "wechat"]
    assert [i.customer_id for i in sent] == ["C1"]
    (call,) = [c for c in wechat_api.calls if c[1] == "/cgi-bin/message/template/send"]
    assert call[2]["access_token"] == ["ACCESS-1"]
    assert call[3]["touser"] == FOLLOWER
    assert call[3]["template_id"] == CARE_TEMPLATE
    assert call[3]["data"] == {"content": {"value": sent[0].text}}
    assert "生日" in sent[0].text
    (unlinked,) = [row for row in _rows(session_factory, "wechat") if row.customer_id == "C2"]
    assert (unlinked.status, unlinked.last_error) == ("skipped", "no_address")


def test_a_refused_template_message_fails_with_errcode_and_without_the_openid(
    wechat_api: FakeWechatApi,
) -> None:
    channel = WechatTemplate(_wechat(wechat_api, api_base="http://127.0.0.1:1"))
    with pytest.raises(DeliveryFailed) as raised:
        channel.send(_message("wechat", FOLLOWER))
    assert raised.value.reason == "wechat_unreachable:ConnectionError"
    assert FOLLOWER not in str(raised.value)
